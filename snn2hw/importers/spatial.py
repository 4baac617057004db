"""Lower 2-D convolution and pooling to dense layers of the IR (no IR layer kind of their own).

A feature map of shape ``(C, H, W)`` is a vector of ``C * H * W`` neurons in PyTorch's flatten order: neuron
``c * H * W + y * W + x`` is channel c at row y, column x. ``nn.Flatten`` is therefore the identity on neuron
indices, and a convolution or pooling becomes a matrix [outputs, inputs] acting on such vectors:

* :func:`conv2d_dense`: ``nn.Conv2d`` / ONNX ``Conv`` with zero padding (cross-correlation, as PyTorch);
  the matrix holds each kernel weight once per output position (unrolled, not weight-shared), and with groups 1
  and dilation 1 comes with the convolution's :class:`~snn2hw.conv_geometry.ConvGeometry`, which a layer carries
  next to the matrix (:attr:`snn2hw.ir.SourceLayer.conv`);
* :func:`sum_pool_dense`: the sum over each window (NIR ``SumPool2d``; ``AvgPool2d`` is it divided by the
  window size), a linear map that composes with the next linear one by a matrix product;
* :func:`max_pool_layer`: ``nn.MaxPool2d`` of 0/1 spikes = OR over each window, an exact integer layer (weight
  2 per pooled input, threshold 1, beta 0, bias 0, no reset: it spikes at t iff one of its inputs spiked at t).

Output sizes follow PyTorch (floor mode): ``H_out = (H + top + bottom - dilation * (k - 1) - 1) // stride + 1``.
``padding`` is ``p``, ``(p_h, p_w)`` or ONNX's ``(top, left, bottom, right)``; ``stride`` and ``dilation`` are an
int or ``(s_h, s_w)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..conv_geometry import ConvGeometry, output_size, scatter_kernel, window_taps
from ..errors import Snn2hwError, UnsupportedModelError
from ..ir import Reset, SourceLayer

__all__ = ["FeatureShape", "conv2d_dense", "sum_pool_dense", "max_pool_layer", "spread_over"]


@dataclass(frozen=True)
class FeatureShape:
    """The shape ``(channels, height, width)`` of a feature map (one sample, no batch dimension)."""

    channels: int
    height: int
    width: int

    def __post_init__(self):
        if not all(isinstance(dim, (int, np.integer)) and dim >= 1 for dim in self.dims):
            raise Snn2hwError(f"feature map shape {self.dims} must be 3 positive integers (C, H, W)")
        for name, dim in zip(("channels", "height", "width"), self.dims):
            object.__setattr__(self, name, int(dim))

    @property
    def dims(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def size(self) -> int:
        """Neurons in the map: C * H * W."""
        return self.channels * self.height * self.width

    def __str__(self) -> str:
        return f"{self.channels}x{self.height}x{self.width}"

    @classmethod
    def parse(cls, text: str) -> "FeatureShape":
        """``"C,H,W"`` (e.g. ``"1,8,8"``) as a FeatureShape."""
        parts = [part.strip() for part in str(text).split(",")]
        if len(parts) != 3 or not all(part.isdigit() and int(part) >= 1 for part in parts):
            raise Snn2hwError(f"input shape {text!r} is not C,H,W (three positive integers, e.g. 1,8,8)")
        return cls(*(int(part) for part in parts))


def _pair(value, what: str, name: str) -> tuple[int, int]:
    values = tuple(int(v) for v in np.atleast_1d(value))
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise UnsupportedModelError(f"{name}: {what} {values} is not 2-D")
    return values


def _pads(padding, name: str) -> tuple[int, int, int, int]:
    """``padding`` as (top, left, bottom, right)."""
    values = tuple(int(v) for v in np.atleast_1d(padding))
    if len(values) == 1:
        values = values * 4
    elif len(values) == 2:
        values = values * 2
    if len(values) != 4 or min(values) < 0:
        raise UnsupportedModelError(f"{name}: padding {values} is not 1, 2 or 4 non-negative values")
    return values


def _taps(shape: FeatureShape, kernel, stride, padding, dilation, name: str):
    """The windows of a 2-D sliding operation: ``(H_out, W_out)`` and, per kernel offset ``(ky, kx)``, the
    flat output positions ``y * W_out + x`` whose window puts that offset inside the input, and the flat input
    positions ``iy * W + ix`` it reads there (:func:`snn2hw.conv_geometry.window_taps`)."""
    (kh, kw), (sh, sw), (dh, dw) = (_pair(kernel, "kernel", name), _pair(stride, "stride", name),
                                    _pair(dilation, "dilation", name))
    pads = _pads(padding, name)
    if min(kh, kw, sh, sw, dh, dw) < 1:
        raise UnsupportedModelError(f"{name}: kernel {(kh, kw)}, stride {(sh, sw)} and dilation {(dh, dw)} must "
                                    f"be >= 1")
    out_h = output_size(shape.height, kh, sh, pads[0], pads[2], dh)
    out_w = output_size(shape.width, kw, sw, pads[1], pads[3], dw)
    if out_h < 1 or out_w < 1:
        raise UnsupportedModelError(f"{name}: kernel {(kh, kw)} does not fit the {shape} input with padding {pads}")
    taps = window_taps((shape.height, shape.width), (out_h, out_w), (kh, kw), (sh, sw), pads, (dh, dw))
    return (out_h, out_w), taps


def conv2d_dense(weight: np.ndarray, bias: np.ndarray | None, shape: FeatureShape, stride=1, padding=0,
                 dilation=1, groups: int = 1, name: str = "Conv2d"
                 ) -> tuple[np.ndarray, np.ndarray, FeatureShape, ConvGeometry | None]:
    """``nn.Conv2d`` with ``weight`` [O, C / groups, kh, kw] and ``bias`` [O] (None: zeros) on a ``shape`` input as
    (matrix float64 [O * H_out * W_out, C * H * W], bias [O * H_out * W_out], output shape, geometry); ``name``
    names the layer in errors. ``matrix @ x.ravel() + bias == conv2d(x, weight, bias, ...).ravel()`` for x of
    ``shape``. The geometry (:class:`~snn2hw.conv_geometry.ConvGeometry`, whose ``lower(weight)`` is the matrix)
    is given for groups 1 and dilation 1, else None."""
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim != 4:
        raise UnsupportedModelError(f"{name}: weight has shape {weight.shape}, expected 4-D [O, C, kh, kw]")
    out_channels, group_in = weight.shape[:2]
    groups = int(groups)
    if groups < 1 or out_channels % groups or group_in * groups != shape.channels:
        raise UnsupportedModelError(f"{name}: weight {weight.shape} with groups {groups} does not take the "
                                    f"{shape.channels} channels of its {shape} input")
    (out_h, out_w), taps = _taps(shape, weight.shape[2:], stride, padding, dilation, name)
    out_shape = FeatureShape(out_channels, out_h, out_w)
    matrix = np.zeros((out_channels, out_h * out_w, shape.channels, shape.height * shape.width))
    group_out = out_channels // groups
    for group in range(groups):
        outs, ins = slice(group * group_out, (group + 1) * group_out), slice(group * group_in, (group + 1) * group_in)
        # matrix[outs, :, ins, :] is a view: the O/g output and C/g input channels of this group
        scatter_kernel(matrix[outs, :, ins, :], weight[outs], taps)
    bias = np.zeros(out_channels) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    if bias.shape != (out_channels,):
        raise UnsupportedModelError(f"{name}: bias has {bias.size} values for {out_channels} output channels")
    geometry = None
    if groups == 1 and _pair(dilation, "dilation", name) == (1, 1):
        geometry = ConvGeometry(shape.dims, out_channels, weight.shape[2:], _pair(stride, "stride", name),
                                _pads(padding, name))
    return (matrix.reshape(out_shape.size, shape.size), np.repeat(bias, out_h * out_w), out_shape, geometry)


def sum_pool_dense(shape: FeatureShape, kernel, stride=None, padding=0, name: str = "SumPool2d"
                   ) -> tuple[np.ndarray, FeatureShape]:
    """The sum over each ``kernel`` window of every channel (zero padding; ``stride`` None: the kernel, as
    PyTorch) as (matrix float64 [C * H_out * W_out, C * H * W] of 0/1, output shape)."""
    (out_h, out_w), taps = _taps(shape, kernel, kernel if stride is None else stride, padding, 1, name)
    out_shape = FeatureShape(shape.channels, out_h, out_w)
    matrix = np.zeros((shape.channels, out_h * out_w, shape.channels, shape.height * shape.width))
    channels = np.arange(shape.channels)[:, None]
    for _, _, out, inp in taps:
        matrix[channels, out[None, :], channels, inp[None, :]] = 1.0
    return matrix.reshape(out_shape.size, shape.size), out_shape


def max_pool_layer(name: str, shape: FeatureShape, kernel, stride=None, padding=0
                   ) -> tuple[SourceLayer, FeatureShape]:
    """``nn.MaxPool2d`` (dilation 1, floor mode) of the 0/1 spikes of a ``shape`` map as a fixed integer layer:
    weight 2 at each input of a window, threshold 1, beta 0, bias 0, reset none, so output neuron i spikes at t
    iff an input of its window spikes at t (v[t] = 2 * count > 1). Padding is never a maximum, as in PyTorch."""
    matrix, out_shape = sum_pool_dense(shape, kernel, stride, padding, name)
    layer = SourceLayer(name=name, weight=2.0 * matrix, bias=np.zeros(out_shape.size), beta=0.0, threshold=1.0,
                        reset=Reset.NONE, fixed=True)
    return layer, out_shape


def spread_over(values, shape: FeatureShape | None):
    """A neuron parameter (beta, threshold) of a layer whose neurons form a ``shape`` map: a tensor that is neither
    one value nor one per neuron but broadcasts to (C, H, W), e.g. one value per channel [C, 1, 1], as the flat
    array of per-neuron values in C,H,W order; anything else (or ``shape`` None) unchanged."""
    array = np.asarray(values)
    if shape is None or array.size in (1, shape.size):
        return values
    try:
        return np.broadcast_to(array, shape.dims).reshape(-1)
    except ValueError:
        return values   # the caller names the element count
