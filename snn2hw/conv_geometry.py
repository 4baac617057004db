"""The geometry of a 2-D convolution that a dense layer of the IR computes (groups 1, dilation 1).

Importers lower ``nn.Conv2d`` / ONNX ``Conv`` / NIR ``Conv2d`` to a dense matrix (:mod:`snn2hw.importers.spatial`);
:class:`ConvGeometry` records which convolution that matrix is, so weight-shared hardware can store the kernel
``[K, C, kh, kw]`` instead of the unrolled matrix. Neurons are in PyTorch's C,H,W flatten order: input neuron
``c * H * W + y * W + x``, output neuron ``k * H_out * W_out + y * W_out + x``, and (cross-correlation, zero
padding, as PyTorch)::

    out[k, y, x] = sum_{c, ky, kx} kernel[k, c, ky, kx] * in[c, y * s_h - top + ky, x * s_w - left + kx]

with out-of-range inputs zero; ``H_out = (H + top + bottom - kh) // s_h + 1`` (floor mode), W_out likewise.
:meth:`ConvGeometry.lower` is that map as the dense matrix; :meth:`ConvGeometry.kernel_of` takes a dense matrix
back to its kernel and refuses one that is not exactly such a convolution.

:func:`output_size` and :func:`window_taps` are the sliding-window arithmetic this module shares with
:mod:`snn2hw.importers.spatial` (which also handles dilation and pooling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import QuantizationError

__all__ = ["ConvGeometry", "output_size", "window_taps", "scatter_kernel", "reached_output", "reaching_offsets"]


def output_size(size: int, kernel: int, stride: int, before: int, after: int, dilation: int = 1) -> int:
    """Outputs of a sliding window along one axis (PyTorch's floor formula; < 1 when the kernel does not fit)."""
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def window_taps(in_hw: tuple[int, int], out_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int, int, int], dilation: tuple[int, int] = (1, 1)
                ) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Per kernel offset ``(ky, kx)`` (row-major): ``(ky, kx, out, inp)`` with ``out`` the flat output positions
    ``y * W_out + x`` whose window puts that offset inside the ``in_hw`` input (``padding`` is (top, left, bottom,
    right)) and ``inp`` the flat input positions ``iy * W + ix`` it reads there, pairwise."""
    (height, width), (out_h, out_w) = in_hw, out_hw
    rows, cols = np.arange(out_h) * stride[0] - padding[0], np.arange(out_w) * stride[1] - padding[1]
    taps = []
    for ky in range(kernel[0]):
        iy = rows + ky * dilation[0]
        in_y = (iy >= 0) & (iy < height)
        for kx in range(kernel[1]):
            ix = cols + kx * dilation[1]
            in_x = (ix >= 0) & (ix < width)
            out = (np.flatnonzero(in_y)[:, None] * out_w + np.flatnonzero(in_x)[None, :]).ravel()
            inp = (iy[in_y][:, None] * width + ix[in_x][None, :]).ravel()
            taps.append((ky, kx, out, inp))
    return taps


def reached_output(i: int, k: int, stride: int, before: int, out: int) -> int | None:
    """Along one axis, the output that input coordinate ``i`` reaches through kernel offset ``k``: ``(i + before
    - k) / stride`` when that is whole and in ``[0, out)``, else None."""
    o, rest = divmod(i + before - k, stride)
    return o if rest == 0 and 0 <= o < out else None


def reaching_offsets(size: int, kernel: int, stride: int, before: int, out: int) -> list[tuple[int, int]]:
    """Per input coordinate ``i < size`` along one axis: ``(first, count)``, the kernel offsets through which
    it reaches an output (:func:`reached_output`), ``first, first + stride, ..., first + (count - 1) * stride``;
    ``(0, 0)`` when it reaches none."""
    reach = []
    for i in range(size):
        offsets = [k for k in range(kernel) if reached_output(i, k, stride, before, out) is not None]
        reach.append((offsets[0], len(offsets)) if offsets else (0, 0))
    return reach


def scatter_kernel(block: np.ndarray, kernel: np.ndarray, taps) -> None:
    """Write ``kernel`` [K, C, kh, kw] into ``block`` [K, H_out * W_out, C, H * W] (a zeroed array or view) at the
    ``taps`` of :func:`window_taps`: the unrolled convolution."""
    for ky, kx, out, inp in taps:
        block[:, out, :, inp] = kernel[:, :, ky, kx]   # broadcast over the (out, inp) pairs


def _ints(values, count: int, what: str, minimum: int) -> tuple[int, ...]:
    try:
        ints = tuple(int(v) for v in values)
        exact = all(int(v) == v for v in values)
    except (TypeError, ValueError):
        ints, exact = (), False
    if len(ints) != count or not exact or min(ints) < minimum:
        raise QuantizationError(f"conv geometry: {what} {values!r} is not {count} integers >= {minimum}")
    return ints


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution, groups 1 and dilation 1, of an ``in_shape`` (C, H, W) map to ``out_channels`` (K) maps
    with a ``kernel`` (kh, kw), ``stride`` (s_h, s_w) and zero ``padding`` (top, left, bottom, right); see the
    module docstring for the exact map."""

    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)

    def __post_init__(self):
        object.__setattr__(self, "in_shape", _ints(self.in_shape, 3, "in_shape (C, H, W)", 1))
        object.__setattr__(self, "out_channels", _ints((self.out_channels,), 1, "out_channels", 1)[0])
        object.__setattr__(self, "kernel", _ints(self.kernel, 2, "kernel (kh, kw)", 1))
        object.__setattr__(self, "stride", _ints(self.stride, 2, "stride (s_h, s_w)", 1))
        object.__setattr__(self, "padding", _ints(self.padding, 4, "padding (top, left, bottom, right)", 0))
        if min(self.out_shape[1:]) < 1:
            raise QuantizationError(f"conv geometry: kernel {self.kernel} does not fit the {self.in_shape} input "
                                    f"with padding {self.padding}")

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """(K, H_out, W_out)."""
        (_, height, width), (kh, kw), (sh, sw), (top, left, bottom, right) = (self.in_shape, self.kernel,
                                                                             self.stride, self.padding)
        return (self.out_channels, output_size(height, kh, sh, top, bottom), output_size(width, kw, sw, left, right))

    @property
    def positions(self) -> int:
        """Output positions per channel: H_out * W_out."""
        return self.out_shape[1] * self.out_shape[2]

    @property
    def n_in(self) -> int:
        """Input neurons: C * H * W."""
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        """Output neurons: K * H_out * W_out."""
        return self.out_channels * self.positions

    def taps(self) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
        """Per kernel offset ``(ky, kx)``: the flat output positions and the flat input positions it connects
        (:func:`window_taps`)."""
        return window_taps(self.in_shape[1:], self.out_shape[1:], self.kernel, self.stride, self.padding)

    def lower(self, kernel: np.ndarray) -> np.ndarray:
        """The dense matrix [K * H_out * W_out, C * H * W] (``kernel``'s dtype) of ``kernel`` [K, C, kh, kw]."""
        kernel = np.asarray(kernel)
        expected = (self.out_channels, self.in_shape[0], *self.kernel)
        if kernel.shape != expected:
            raise QuantizationError(f"conv geometry {self}: kernel has shape {kernel.shape}, expected {expected}")
        channels, height, width = self.in_shape
        block = np.zeros((self.out_channels, self.positions, channels, height * width), dtype=kernel.dtype)
        scatter_kernel(block, kernel, self.taps())
        return block.reshape(self.n_out, self.n_in)

    def kernel_of(self, weight: np.ndarray, layer: str = "") -> np.ndarray:
        """The kernel [K, C, kh, kw] (``weight``'s dtype) whose :meth:`lower` is exactly ``weight``; a kernel
        offset that no output reads is 0. Raises QuantizationError naming ``layer`` if there is none."""
        weight = np.asarray(weight)
        if weight.shape != (self.n_out, self.n_in):
            raise QuantizationError(f"layer {layer!r}: weight has shape {weight.shape}, but its convolution "
                                    f"({self}) has shape ({self.n_out}, {self.n_in})")
        blocks = weight.reshape(self.out_channels, self.positions, self.in_shape[0], -1)
        kernel = np.zeros((self.out_channels, self.in_shape[0], *self.kernel), dtype=weight.dtype)
        for ky, kx, out, inp in self.taps():
            if out.size:
                kernel[:, :, ky, kx] = blocks[:, out[0], :, inp[0]]
        differs = self.lower(kernel) != weight
        if np.any(differs):
            row, col = (int(i) for i in np.argwhere(differs)[0])
            raise QuantizationError(f"layer {layer!r}: weight is not the convolution {self}: weight[{row}, {col}] "
                                    f"is {weight[row, col]}, the kernel gives {self.lower(kernel)[row, col]}")
        return kernel

    def matches(self, weight: np.ndarray) -> bool:
        """Whether ``weight`` is exactly this convolution of some kernel (:meth:`kernel_of` succeeds)."""
        try:
            self.kernel_of(weight)
        except QuantizationError:
            return False
        return True

    def __str__(self) -> str:
        return (f"Conv2d {'x'.join(map(str, self.in_shape))} -> {'x'.join(map(str, self.out_shape))}, kernel "
                f"{self.kernel[0]}x{self.kernel[1]}, stride {self.stride}, padding {self.padding}")

    def to_json(self) -> dict:
        return {"in_shape": list(self.in_shape), "out_channels": self.out_channels, "kernel": list(self.kernel),
                "stride": list(self.stride), "padding": list(self.padding)}

    @classmethod
    def from_json(cls, obj: dict) -> "ConvGeometry":
        try:
            return cls(in_shape=obj["in_shape"], out_channels=obj["out_channels"], kernel=obj["kernel"],
                       stride=obj["stride"], padding=obj["padding"])
        except (KeyError, TypeError) as exc:
            raise QuantizationError(f"conv geometry {obj!r} is malformed ({exc!r})") from None
