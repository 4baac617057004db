"""The host side of the accelerator's handshake, shared by every testbench (Amaranth simulator, cocotb).

A testbench supplies a :class:`Pins` adapter; :func:`run_inference` pulses ``start``, streams one
sample's input events, collects the output events (and the membrane readout's beats, where the pins have
them) and counts cycles from ``start`` to ``done``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..hw.events import EventFormat
from ..hw.membrane_readout import MembraneFormat

__all__ = ["Pins", "encode_inputs", "decode_outputs", "run_inference", "InferenceResult"]


class Pins(Protocol):
    """Access to the top's ports. ``drive`` sets an input; ``sample`` returns the settled outputs of the
    current cycle as a dict with ``i_ready``, ``o_valid``, ``o_payload``, ``done`` and, for a membrane
    readout, ``m_valid``, ``m_payload``; ``tick`` advances one clock cycle."""

    def drive(self, port: str, value: int) -> None: ...

    async def sample(self) -> dict[str, int]: ...

    async def tick(self) -> None: ...


def encode_inputs(spikes: np.ndarray) -> list[int]:
    """Packed input beats for one sample's 0/1 spikes [T, n_in]: spike indices, then end-of-timestep."""
    fmt = EventFormat(spikes.shape[1])
    steps = spikes.shape[0]
    beats = []
    for t in range(steps):
        beats += [fmt.pack(int(index)) for index in np.flatnonzero(spikes[t])]
        beats.append(fmt.pack(eot=True, last=t == steps - 1))
    return beats


def decode_outputs(beats: list[int], steps: int, n_out: int) -> np.ndarray:
    """The uint8 [T, n_out] spike raster of one sample's output beats; raises ValueError if malformed."""
    fmt = EventFormat(n_out)
    raster = np.zeros((steps, n_out), np.uint8)
    t = 0
    for beat in beats:
        index, eot, last = fmt.unpack(beat)
        if t >= steps:
            raise ValueError(f"output beat after the final timestep: {beat:#x}")
        if eot:
            if last != (t == steps - 1):
                raise ValueError(f"end-of-timestep {t} has last={int(last)}")
            t += 1
        elif index >= n_out:
            raise ValueError(f"output spike index {index} >= {n_out} at timestep {t}")
        else:
            raster[t, index] = 1
    if t != steps:
        raise ValueError(f"output ended after {t} of {steps} timesteps")
    return raster


@dataclass(frozen=True)
class InferenceResult:
    """One inference: the output ``raster`` uint8 [T, n_out], the ``cycles`` from start to done and, where
    read out, the last layer's ``membranes`` int64 [T, n_out]."""

    raster: np.ndarray
    cycles: int
    membranes: np.ndarray | None = None


async def run_inference(pins: Pins, spikes: np.ndarray, n_out: int, max_cycles: int,
                        membranes: MembraneFormat | None = None) -> InferenceResult:
    """Drive one inference of 0/1 ``spikes`` [T, n_in]; raise TimeoutError if ``done`` never rises. With
    ``membranes`` the membrane readout's beats are decoded too (ValueError if there are not T * groups)."""
    beats = encode_inputs(spikes)
    outputs: list[int] = []
    membrane_beats: list[int] = []
    pins.drive("o_ready", 1)
    pins.drive("i_valid", 0)
    pins.drive("start", 1)
    await pins.tick()
    pins.drive("start", 0)
    position = 0
    for cycle in range(1, max_cycles + 1):
        if position < len(beats):
            pins.drive("i_valid", 1)
            pins.drive("i_payload", beats[position])
        else:
            pins.drive("i_valid", 0)
        seen = await pins.sample()
        if membranes is not None and seen["m_valid"]:
            membrane_beats.append(seen["m_payload"])
        if seen["done"]:
            await pins.tick()
            steps = spikes.shape[0]
            return InferenceResult(decode_outputs(outputs, steps, n_out), cycle,
                                   None if membranes is None else membranes.decode(membrane_beats, steps))
        if position < len(beats) and seen["i_ready"]:
            position += 1
        if seen["o_valid"]:
            outputs.append(seen["o_payload"])
        await pins.tick()
    raise TimeoutError(f"done did not rise within {max_cycles} cycles ({position} of {len(beats)} input "
                       f"beats taken, {len(outputs)} output beats seen)")
