"""Model importers: turn a trained snnTorch network saved to a file into a :class:`snn2hw.ir.SourceNetwork`.

:func:`load_model` picks the importer from the file extension:

* ``.onnx``: the single-timestep graph ``torch.onnx.export`` makes (:mod:`.onnx_model`);
* ``.pt`` / ``.pth``: a ``state_dict`` saved with ``torch.save`` (:mod:`.state_dict`);
* ``.nir``: a NIR graph written with ``nir.write``, e.g. by snnTorch's ``export_to_nir`` (:mod:`.nir_model`).

Importers raise only :class:`~snn2hw.errors.Snn2hwError` subclasses with one-line messages. The helpers below
are shared by the importers; the importer modules are imported lazily so that reading an ONNX file does not
import torch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError, UnsupportedModelError
from ..ir import Reset, SourceNetwork
from .spatial import FeatureShape

__all__ = ["load_model", "SUPPORTED_EXTENSIONS", "DEFAULT_NIR_DT"]

SUPPORTED_EXTENSIONS = (".onnx", ".pt", ".pth", ".nir")
DEFAULT_NIR_DT = 1e-4  # the time step snnTorch's export_to_nir assumes


def load_model(path: str | os.PathLike, *, nir_dt: float = DEFAULT_NIR_DT,
               reset: Reset | str | None = None, input_shape: FeatureShape | str | None = None) -> SourceNetwork:
    """Import the model at ``path``, choosing the importer from its extension (see :data:`SUPPORTED_EXTENSIONS`).

    ``nir_dt`` and ``reset`` (subtract or zero, default zero) apply to NIR files only, which cannot say either;
    ``reset`` given for another format, which carries its own reset mechanism, is refused. ``input_shape``
    (C, H, W, or the text ``"C,H,W"``) applies to state dicts only, which do not hold the input shape a first
    nn.Conv2d needs; ONNX and NIR files declare their own, so it is refused for them.
    """
    suffix = Path(path).suffix.lower()
    if input_shape is not None and suffix not in (".pt", ".pth"):
        raise UnsupportedModelError(f"an input shape ({input_shape}) can only be given for a state dict (.pt); "
                                    f"{str(path)!r} declares its own")
    if suffix == ".nir":
        from .nir_model import load_nir
        return load_nir(path, dt=nir_dt, reset=Reset.ZERO if reset is None else Reset(reset))
    if reset is not None:
        raise UnsupportedModelError(f"a reset mechanism ({Reset(reset).value}) can only be chosen for a NIR model; "
                                    f"{str(path)!r} holds its own")
    if suffix == ".onnx":
        from .onnx_model import load_onnx
        return load_onnx(path)
    if suffix in (".pt", ".pth"):
        from .state_dict import load_state_dict
        shape = FeatureShape.parse(input_shape) if isinstance(input_shape, str) else input_shape
        return load_state_dict(path, input_shape=shape)
    what = f"unsupported extension {suffix!r}" if suffix else "no extension"
    raise ModelFormatError(f"model file {str(path)!r} has {what} (supported: {', '.join(SUPPORTED_EXTENSIONS)})")


def check_model_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a :class:`Path` if it names a non-empty regular file, else raise ModelFormatError."""
    path = Path(path)
    if not path.exists():
        raise ModelFormatError(f"model file {str(path)!r} does not exist")
    if not path.is_file():
        raise ModelFormatError(f"model file {str(path)!r} is not a regular file")
    if path.stat().st_size == 0:
        raise ModelFormatError(f"model file {str(path)!r} is empty")
    return path


def one_line(message: BaseException | str, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (terminal colour codes removed), at most ``limit`` chars."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(message))
    fallback = type(message).__name__ if isinstance(message, BaseException) else "(no message)"
    line = next((line.strip() for line in text.splitlines() if line.strip()), fallback)
    return line if len(line) <= limit else line[:limit - 3] + "..."


def layer_name(prefix: str | None, index: int, taken: set[str]) -> str:
    """A unique identifier for a layer: ``prefix`` made a valid identifier, else ``layer<index>``.

    ``'fc1'`` stays ``'fc1'``, ``'fcs.0'`` becomes ``'fcs_0'``, ``'0'`` becomes ``'layer0'``; a name already in
    ``taken`` gets a ``_2``, ``_3``... suffix. The returned name is added to ``taken``.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", prefix or "")
    if not name:
        name = f"layer{index}"
    elif not name.isidentifier():
        name = f"layer{name}"
    unique, count = name, 2
    while unique in taken:
        unique, count = f"{name}_{count}", count + 1
    taken.add(unique)
    return unique


def scalar_param(values, what: str, layer: str) -> float:
    """The value of a scalar parameter given as a scalar or as a tensor whose elements are all equal.

    Differing elements (a per-neuron parameter) raise UnsupportedModelError; NaN/Inf are returned as they are so
    that the IR rejects them with a QuantizationError.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        raise UnsupportedModelError(f"layer {layer!r}: {what} is an empty tensor")
    non_finite = flat[~np.isfinite(flat)]
    if non_finite.size:
        return float(non_finite[0])
    if np.any(flat != flat[0]):
        raise UnsupportedModelError(f"layer {layer!r}: per-neuron {what} is not supported yet "
                                    f"({flat.size} values from {flat.min():g} to {flat.max():g})")
    return float(flat[0])


def neuron_param(values, n_out: int, what: str, layer: str) -> float | np.ndarray:
    """A neuron parameter (beta, threshold) given as a scalar or a tensor of 1 or ``n_out`` (per-neuron) elements:
    a float when all elements are equal, else a float64 array [n_out]. Another element count raises
    UnsupportedModelError; NaN/Inf are returned as they are so that the IR rejects them with a QuantizationError.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size not in (1, n_out):
        raise UnsupportedModelError(f"layer {layer!r}: {what} has {flat.size} elements; expected 1 or one per "
                                    f"neuron ({n_out})")
    non_finite = flat[~np.isfinite(flat)]
    if non_finite.size:
        return float(non_finite[0])
    return float(flat[0]) if np.all(flat == flat[0]) else flat


def check_graded_spikes(values, layer: str) -> None:
    """Reject an snnTorch ``graded_spikes_factor`` other than 1 (spikes are single bits in hardware)."""
    factor = scalar_param(values, "graded_spikes_factor", layer)
    if factor != 1.0:
        raise UnsupportedModelError(f"layer {layer!r}: graded_spikes_factor {factor:g} is not supported "
                                    f"(spikes must be 0/1)")
