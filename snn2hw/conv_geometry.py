"""TEMPORARY stand-in for the helper's ConvGeometry (branch conv-geometry); replaced at merge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvGeometry:
    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        (kh, kw), (sh, sw), (top, left, bottom, right) = self.kernel, self.stride, self.padding
        return (self.out_channels, (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1)

    @property
    def positions(self) -> int:
        return self.out_shape[1] * self.out_shape[2]

    def lower(self, kernel):
        from .importers.spatial import FeatureShape, conv2d_dense
        top, left, bottom, right = self.padding
        return conv2d_dense(kernel, None, FeatureShape(*self.in_shape), self.stride, (top, left, bottom, right))[0]

    def kernel_of(self, weight) -> np.ndarray:
        c, h, w = self.in_shape
        k, oh, ow = self.out_shape
        kh, kw = self.kernel
        kernel = np.zeros((k, c, kh, kw), np.int64)
        dense = np.asarray(weight).reshape(k, oh, ow, c, h, w)
        for oy in range(oh):
            for ox in range(ow):
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * self.stride[0] - self.padding[0] + ky, ox * self.stride[1] - self.padding[1] + kx
                        if 0 <= iy < h and 0 <= ix < w:
                            kernel[:, :, ky, kx] = dense[:, oy, ox, :, iy, ix]
        assert np.array_equal(self.lower(kernel), np.asarray(weight))
        return kernel
