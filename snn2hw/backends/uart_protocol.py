"""The host side of the UART byte protocol of :mod:`snn2hw.hw.board_top` (its docstring defines it).

One module for every host: ``snn2hw run`` (:func:`run_on_serial`, over pyserial) and the testbenches of
the board top (cocotb under Verilator, Amaranth's simulator) all encode inputs with :class:`InputWindow`
/ :func:`encode_sample` and decode replies with :class:`OutputDecoder`. Beats are those of
:func:`snn2hw.verify.protocol.encode_inputs` / :func:`~snn2hw.verify.protocol.decode_outputs`; this
module only adds the bytes, the flow-control window and the serial port.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import ToolError
from ..golden import as_batch
from ..hw.accelerator import spram_image
from ..hw.board_top import RX_FIFO_BEATS, beat_bytes
from ..hw.events import EventFormat
from ..hw.weight_loader import LOAD_DONE, LOAD_REQUEST
from ..verify.protocol import decode_outputs, encode_inputs

__all__ = ["beat_bytes", "pack_beats", "encode_sample", "InputWindow", "OutputDecoder", "run_on_serial",
           "RX_FIFO_BEATS", "DEFAULT_BAUD", "weight_image_bytes", "LOAD_REQUEST_WAIT_S"]

DEFAULT_BAUD = 115200
LOAD_REQUEST_WAIT_S = 0.5    # five load-request periods of the board top


def pack_beats(beats: list[int], neurons: int) -> bytes:
    """The line bytes of packed event ``beats`` of a population of ``neurons``: each beat little-endian."""
    width = beat_bytes(neurons)
    return b"".join(beat.to_bytes(width, "little") for beat in beats)


def encode_sample(spikes: np.ndarray) -> bytes:
    """All line bytes of one inference's 0/1 input ``spikes`` [T, n_in]."""
    spikes = np.asarray(spikes)
    return pack_beats(encode_inputs(spikes), spikes.shape[1])


class InputWindow:
    """The bytes of one inference's input, released so that the board's input FIFO never overflows.

    The board has taken every input beat of timestep t once the host has received output end-of-timestep
    beat t. With ``steps_done`` such beats received, :meth:`release` hands out all beats of timestep
    ``steps_done`` (the accelerator takes them as they arrive, its layers having finished every earlier
    timestep) and, beyond those, beats as long as the beats of unfinished timesteps stay within
    ``window`` (the board's :data:`RX_FIFO_BEATS`).
    """

    def __init__(self, spikes: np.ndarray, window: int = RX_FIFO_BEATS):
        if window < 1:
            raise ValueError(f"window must be at least 1 beat, got {window}")
        spikes = np.asarray(spikes)
        self._neurons, self.window = spikes.shape[1], window
        self._beats = encode_inputs(spikes)
        # _retired[s]: the beats of timesteps 0 .. s-1, which the board has taken once s are done.
        self._retired = np.concatenate([[0], np.cumsum(np.count_nonzero(spikes, axis=1) + 1)])
        self.sent = 0

    @property
    def total(self) -> int:
        """Number of input beats of the inference."""
        return len(self._beats)

    @property
    def finished(self) -> bool:
        return self.sent == len(self._beats)

    def release(self, steps_done: int) -> bytes:
        """The bytes that may be sent now, given ``steps_done`` output end-of-timestep beats received."""
        steps = len(self._retired) - 1
        retired = int(self._retired[min(steps_done, steps)])
        end = min(len(self._beats), max(retired + self.window, int(self._retired[min(steps_done + 1, steps)])))
        if end <= self.sent:
            return b""
        chunk = pack_beats(self._beats[self.sent:end], self._neurons)
        self.sent = end
        return chunk


class OutputDecoder:
    """Decode the board's reply to one inference from bytes received in pieces of any size.

    :meth:`feed` returns the bytes that follow the inference's final beat (they belong to a later reply);
    ``steps_done`` counts the end-of-timestep beats so far; once ``complete``, ``raster`` is the uint8
    [timesteps, n_out] output. A malformed reply raises ValueError.
    """

    def __init__(self, n_out: int, timesteps: int):
        if n_out < 1 or timesteps < 1:
            raise ValueError(f"need n_out >= 1 and timesteps >= 1, got {n_out} and {timesteps}")
        self.n_out, self.timesteps = n_out, timesteps
        self._width = beat_bytes(n_out)
        index_bits = EventFormat(n_out).index_bits
        self._eot, self._last = 1 << index_bits, 1 << (index_bits + 1)
        self._partial = bytearray()
        self.beats: list[int] = []
        self.steps_done = 0
        self.raster: np.ndarray | None = None

    @property
    def complete(self) -> bool:
        return self.raster is not None

    def feed(self, data: bytes) -> bytes:
        if self.complete:
            return bytes(data)
        self._partial += data
        position = 0
        while len(self._partial) - position >= self._width:
            beat = int.from_bytes(self._partial[position:position + self._width], "little")
            position += self._width
            self.beats.append(beat)
            if beat & self._eot:
                self.steps_done += 1
                if beat & self._last or self.steps_done == self.timesteps:
                    self.raster = decode_outputs(self.beats, self.timesteps, self.n_out)
                    rest = bytes(self._partial[position:])
                    self._partial.clear()
                    return rest
        del self._partial[:position]
        return b""

    def describe(self) -> str:
        """Progress, for error messages."""
        return (f"{self.steps_done} of {self.timesteps} timesteps received ({len(self.beats)} beats"
                + (f", {len(self._partial)} stray bytes" if self._partial else "") + ")")


def run_on_serial(port: str, design, inputs: np.ndarray, baudrate: int = DEFAULT_BAUD,
                  timeout_s: float = 5.0) -> np.ndarray:
    """Run 0/1 ``inputs`` ([B, T, n_in] or [T, n_in]) on a board programmed with ``design`` (a
    :class:`~snn2hw.backends.design.CompiledDesign`) at ``port``; return the uint8 rasters [B, T, n_out].

    Samples run one after another; each waits for the previous reply. ``timeout_s`` is the longest silence
    tolerated while a reply is due. Raises :class:`~snn2hw.errors.ToolError`.
    """
    network = design.network
    batch = as_batch(inputs, network.n_in)
    try:
        import serial  # pyserial
    except ImportError:
        raise ToolError("snn2hw run needs pyserial (pip install pyserial)") from None
    try:
        link = serial.Serial(port, baudrate=baudrate, timeout=min(0.05, timeout_s), write_timeout=timeout_s)
    except (serial.SerialException, ValueError, OSError) as exc:
        raise ToolError(f"cannot open serial port {port!r} at {baudrate} baud ({exc})") from None
    rasters = np.zeros((batch.shape[0], batch.shape[1], network.n_out), np.uint8)
    image = weight_image_bytes(design)
    try:
        with link:
            link.reset_input_buffer()
            if image:
                _answer_load_request(link, image, baudrate, timeout_s)
            for index, sample in enumerate(batch):
                rasters[index] = _serial_inference(link, sample, network.n_out, timeout_s, index)
    except serial.SerialException as exc:
        raise ToolError(f"serial port {port!r} failed ({exc})") from None
    return rasters


def weight_image_bytes(design) -> bytes:
    """The SPRAM weight image the board asks for after reset: the bytes of ``OUTDIR/spram_weights.bin``
    (empty for a design without SPRAM weights)."""
    words = spram_image(design.network, design.mappings)
    return b"".join(word.to_bytes(2, "little") for word in words)


def _answer_load_request(link, image: bytes, baudrate: int, timeout_s: float) -> None:
    """Send ``image`` if the board asks for it (see :mod:`snn2hw.hw.weight_loader`), then wait for its
    ``LOAD_DONE``. A board that stays silent for :data:`LOAD_REQUEST_WAIT_S` already has its weights."""
    deadline = time.monotonic() + LOAD_REQUEST_WAIT_S
    heard = b""
    while not heard and time.monotonic() < deadline:
        heard = link.read(max(1, link.in_waiting))
    if not heard:
        return
    if set(heard) != {LOAD_REQUEST}:
        raise ToolError(f"the board sent {heard[:8].hex(' ')} instead of a weight load request; reset the board")
    link.write(image)
    link.flush()
    deadline = time.monotonic() + timeout_s + 10 * len(image) / baudrate
    while time.monotonic() < deadline:
        for value in link.read(max(1, link.in_waiting)):
            if value == LOAD_DONE:
                return
            if value != LOAD_REQUEST:
                raise ToolError(f"the board sent {value:#04x} while loading weights; reset the board")
    raise ToolError(f"the board did not confirm the {len(image)}-byte weight image within "
                    f"{timeout_s + 10 * len(image) / baudrate:.1f} s; reset the board")


def _serial_inference(link, sample: np.ndarray, n_out: int, timeout_s: float, index: int) -> np.ndarray:
    window, decoder = InputWindow(sample), OutputDecoder(n_out, sample.shape[0])
    deadline = time.monotonic() + timeout_s
    while not decoder.complete:
        chunk = window.release(decoder.steps_done)
        if chunk:
            link.write(chunk)
            link.flush()
            deadline = time.monotonic() + timeout_s
        data = link.read(max(1, link.in_waiting))
        if data:
            deadline = time.monotonic() + timeout_s
            try:
                rest = decoder.feed(data)
            except ValueError as exc:
                raise ToolError(f"sample {index}: malformed reply from the board ({exc}); reset the board") \
                    from None
            if rest:
                raise ToolError(f"sample {index}: {len(rest)} unexpected bytes after the reply; reset the board")
        elif time.monotonic() > deadline:
            raise ToolError(f"sample {index}: no reply from the board within {timeout_s} s "
                            f"({window.sent} of {window.total} input beats sent, {decoder.describe()})")
    return decoder.raster
