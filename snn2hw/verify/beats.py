"""Beat streams of whole batches for the simulation harness, in numpy: the input beats of every sample
back to back, the split of a batch into harness runs, and the output rasters of a run's output beats.

The encoding is :mod:`snn2hw.verify.protocol`'s (``encode_inputs`` sample after sample); a run's outputs are
decoded as ``decode_outputs`` does, which also gives the message for a malformed sample.
"""

from __future__ import annotations

import numpy as np

from ..errors import ToolError
from ..hw.events import EventFormat
from .harness import HarnessCapacity
from .protocol import decode_outputs

__all__ = ["encode_batch", "plan_chunks", "decode_run", "INCOMPLETE"]

INCOMPLETE = "output stream ended before the final end-of-timestep"


def encode_batch(spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The input beats of 0/1 ``spikes`` [B, T, n_in], all samples back to back, and each sample's count:
    per timestep the indices of the spiking inputs, ascending, then end-of-timestep (+ last at the end)."""
    batch, steps, n_in = spikes.shape
    fmt = EventFormat(n_in)
    codes = np.empty((steps, n_in + 1), np.int64)
    codes[:, :n_in] = np.arange(n_in)
    codes[:, n_in] = fmt.pack(eot=True)
    codes[-1, n_in] = fmt.pack(eot=True, last=True)
    emitted = np.concatenate([spikes != 0, np.ones((batch, steps, 1), bool)], axis=2)
    return np.broadcast_to(codes, emitted.shape)[emitted], emitted.reshape(batch, -1).sum(axis=1)


def plan_chunks(counts: np.ndarray, out_beats_max: int, capacity: HarnessCapacity,
                membrane_beats: int = 0) -> list[range]:
    """Split samples with ``counts`` input beats into consecutive runs that fit the harness's input beats,
    output beats (``out_beats_max`` per sample), membrane beats (``membrane_beats`` per sample) and samples."""
    if out_beats_max > capacity.out_beats or membrane_beats > capacity.membrane_beats:
        raise ToolError(f"one sample needs more simulation harness memory than it has ({out_beats_max} output "
                        f"beats of {capacity.out_beats}, {membrane_beats} membrane beats of "
                        f"{capacity.membrane_beats})")
    per_run = min(capacity.samples, capacity.out_beats // max(out_beats_max, 1),
                  capacity.membrane_beats // max(membrane_beats, 1))
    chunks, start, used_in = [], 0, 0
    for index, count in enumerate(int(count) for count in counts):
        if count > capacity.in_beats:
            raise ToolError(f"sample {index} needs more simulation harness memory than it has ({count} input "
                            f"beats of {capacity.in_beats})")
        if index > start and (used_in + count > capacity.in_beats or index - start == per_run):
            chunks.append(range(start, index))
            start, used_in = index, 0
        used_in += count
    if len(counts):
        chunks.append(range(start, len(counts)))
    return chunks


def decode_run(outputs: np.ndarray, samples: int, steps: int, n_out: int) -> tuple[list[np.ndarray], str]:
    """The uint8 [T, n_out] rasters of the first ``samples`` samples in one run's output beats (each sample
    ending with its end-of-timestep + last beat), stopping at the first sample whose stream is incomplete or
    malformed: (rasters, problem), problem '' if none."""
    fmt = EventFormat(n_out)
    outputs = np.asarray(outputs, np.int64)
    index = outputs & ((1 << fmt.index_bits) - 1)
    eot = (outputs >> fmt.index_bits) & 1
    ends = np.flatnonzero(eot & (outputs >> (fmt.index_bits + 1))) + 1
    rasters, start = [], 0
    for end in ends[:samples]:
        spikes = eot[start:end] == 0
        step = np.cumsum(eot[start:end]) - eot[start:end]           # end-of-timesteps before each beat
        if eot[start:end].sum() == steps and (index[start:end][spikes] < n_out).all():
            raster = np.zeros((steps, n_out), np.uint8)
            raster[step[spikes], index[start:end][spikes]] = 1
        else:
            try:
                raster = decode_outputs(outputs[start:end].tolist(), steps, n_out)
            except ValueError as exc:
                return rasters, str(exc)
        rasters.append(raster)
        start = end
    return rasters, "" if len(rasters) == samples else INCOMPLETE
