"""Evaluate weight quantizers on constant tensors: QONNX ``Quant``/``IntQuant`` and ONNX ``QuantizeLinear``/
``DequantizeLinear``.

Each evaluation returns the op's output and the **grid** it lies on: the scale broadcast to the output's shape
(float64), so that the output divided by it element by element is an integer tensor (a per-tensor scale is a
constant array, a per-channel one varies along its axis), or None when the output is not on an integer grid (a
non-integer zero point) or is itself integer (``QuantizeLinear``).

* ``Quant`` / ``IntQuant`` (domain ``qonnx.custom_op.general``, as Brevitas' ``export_qonnx`` writes, or the older
  ``onnx.brevitas`` / ``finn.custom_op.general``), inputs ``x, scale, zero_point, bitwidth``, attributes
  ``signed`` (default 1), ``narrow`` (default 0), ``rounding_mode`` (default ROUND = half to even)::

      q = rounding(clamp(x / scale + zero_point, min_int, max_int));  y = (q - zero_point) * scale

  with ``[min_int, max_int]`` = signed ``[-2^(b-1) (+1 if narrow), 2^(b-1) - 1]``, unsigned ``[0, 2^b - 1
  (-1 if narrow)]``; a signed 1-bit Quant is bipolar (``q = +1 if x / scale + zero_point >= 0 else -1``), as in
  QONNX's reference implementation.
* ``QuantizeLinear(x, y_scale[, y_zero_point])`` = ``saturate(round_half_even(x / y_scale) + y_zero_point)`` in
  the zero point's integer type (uint8 without one), ``DequantizeLinear(x, x_scale[, x_zero_point])`` =
  ``(x - x_zero_point) * x_scale``; per-axis scales along ``axis`` (default 1); blocked quantization is refused.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..errors import UnsupportedModelError

__all__ = ["QONNX_DOMAINS", "is_quantizer", "evaluate"]

QONNX_DOMAINS = frozenset({"qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general"})
_QONNX_OPS = frozenset({"Quant", "IntQuant"})
_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
_ROUNDING = {
    "ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor,
    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)), "DOWN": np.trunc,
    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5),
    "HALF_DOWN": lambda v: np.sign(v) * np.ceil(np.abs(v) - 0.5),
}


def is_quantizer(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is one of the quantizers :func:`evaluate` handles."""
    if node.op_type in _QONNX_OPS:
        return node.domain in QONNX_DOMAINS
    return node.op_type in _QDQ_OPS and node.domain in ("", "ai.onnx")


def evaluate(node: onnx.NodeProto, inputs: list[np.ndarray | None], where: str
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """(output, grid) of quantizer ``node`` on constant ``inputs``; ``where`` names the node in errors."""
    attrs = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
    if node.op_type in _QONNX_OPS:
        return _quant(inputs, attrs, where)
    if attrs.get("block_size", 0):
        raise UnsupportedModelError(f"{where}: blocked quantization (block_size {attrs['block_size']}) is not "
                                    f"supported")
    if node.op_type == "QuantizeLinear":
        return _quantize_linear(inputs, attrs, where), None
    return _dequantize_linear(inputs, attrs, where)


def _check_scale(scale: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise UnsupportedModelError(f"{where}: scale {np.ravel(scale)[:4].tolist()} must be finite and > 0")


def _grid(scale: np.ndarray, zero_point: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """The grid of ``(q - zero_point) * scale`` of shape ``shape``: the scale broadcast to it, or None for a
    fractional zero point."""
    if not np.all(np.asarray(zero_point) == np.round(zero_point)):
        return None
    return np.broadcast_to(np.asarray(scale, dtype=np.float64), shape).copy()


def _quant(inputs, attrs: dict, where: str) -> tuple[np.ndarray, object]:
    x, scale, zero_point, bits = (np.asarray(value, dtype=np.float64) for value in inputs[:4])
    if bits.size != 1 or bits.item() != int(bits.item()) or bits.item() < 1:
        raise UnsupportedModelError(f"{where}: bit width {bits.ravel().tolist()} is not one positive integer")
    bits, signed, narrow = int(bits.item()), bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    mode = attrs.get("rounding_mode", b"ROUND")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
    if mode not in _ROUNDING:
        raise UnsupportedModelError(f"{where}: rounding_mode {mode!r} is not one of {sorted(_ROUNDING)}")
    _check_scale(scale, where)
    shifted = x / scale + zero_point
    if bits == 1 and signed:
        q = np.where(shifted >= 0, 1.0, -1.0)
    else:
        low = -(1 << (bits - 1)) + int(narrow) if signed else 0
        high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - int(narrow)
        q = _ROUNDING[mode](np.clip(shifted, low, high))
    values = (q - zero_point) * scale
    return values, _grid(scale, zero_point, values.shape)


def _per_axis(param: np.ndarray, like: np.ndarray, axis: int, where: str) -> np.ndarray:
    """A scale or zero point, scalar or 1-D along ``axis`` of ``like``, shaped to broadcast against it."""
    if param.size == 1:
        return param.reshape(())
    axis = axis % like.ndim if like.ndim else 0
    if param.ndim != 1 or like.ndim == 0 or param.shape[0] != like.shape[axis]:
        raise UnsupportedModelError(f"{where}: scale/zero point of shape {list(param.shape)} does not match axis "
                                    f"{axis} of a tensor of shape {list(like.shape)}")
    shape = [1] * like.ndim
    shape[axis] = param.shape[0]
    return param.reshape(shape)


def _integer_type(zero_point: np.ndarray | None, attrs: dict, where: str) -> np.dtype:
    if zero_point is not None:
        dtype = zero_point.dtype
    elif attrs.get("output_dtype"):
        dtype = helper.tensor_dtype_to_np_dtype(attrs["output_dtype"])
    else:
        dtype = np.dtype(np.uint8)
    if np.dtype(dtype).kind not in "iu":
        raise UnsupportedModelError(f"{where}: quantization to {np.dtype(dtype).name} is not integer quantization")
    return np.dtype(dtype)


def _quantize_linear(inputs, attrs: dict, where: str) -> np.ndarray:
    x, scale = np.asarray(inputs[0], dtype=np.float64), np.asarray(inputs[1], dtype=np.float64)
    zero_point = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    dtype = _integer_type(zero_point, attrs, where)
    axis = attrs.get("axis", 1)
    _check_scale(scale, where)
    zp = 0 if zero_point is None else _per_axis(zero_point.astype(np.int64), x, axis, where)
    q = np.round(x / _per_axis(scale, x, axis, where)) + zp
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize_linear(inputs, attrs: dict, where: str) -> tuple[np.ndarray, object]:
    x = np.asarray(inputs[0])
    if x.dtype.kind not in "iu":
        raise UnsupportedModelError(f"{where}: dequantizes a {x.dtype.name} tensor, not integers")
    scale = np.asarray(inputs[1], dtype=np.float64)
    _check_scale(scale, where)
    zero_point = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.zeros((), np.int64)
    axis = attrs.get("axis", 1)
    scale = _per_axis(scale, x, axis, where)
    values = (x.astype(np.int64) - _per_axis(np.asarray(zero_point, np.int64), x, axis, where)) * scale
    return values, _grid(scale, 0, values.shape)
