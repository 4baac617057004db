"""Batch beat streams: numpy encoding equals the protocol's per-sample encoding, runs fit the harness,
and a run's outputs decode as decode_outputs does, malformed samples included."""

import numpy as np
import pytest

from snn2hw.errors import ToolError
from snn2hw.hw.events import EventFormat
from snn2hw.verify.beats import INCOMPLETE, decode_run, encode_batch, plan_chunks
from snn2hw.verify.harness import HarnessCapacity
from snn2hw.verify.protocol import decode_outputs, encode_inputs


def _spikes(samples=7, steps=5, n=9, seed=0):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((samples, steps, n)) < rng.random((samples, 1, 1))).astype(np.uint8)
    spikes[0] = 0
    spikes[1] = 1
    return spikes


def test_encode_batch_is_encode_inputs_sample_after_sample():
    spikes = _spikes()
    beats, counts = encode_batch(spikes)
    expected = [encode_inputs(sample) for sample in spikes]
    assert counts.tolist() == [len(sample) for sample in expected]
    assert beats.tolist() == [beat for sample in expected for beat in sample]


def test_chunks_fit_every_harness_memory():
    capacity = HarnessCapacity(in_beats=10, out_beats=12, samples=3, image_words=1)
    assert plan_chunks(np.array([4, 4, 4, 1, 1, 1, 1]), 4, capacity) == [range(0, 2), range(2, 5), range(5, 7)]
    assert plan_chunks(np.array([1] * 7), 1, capacity) == [range(0, 3), range(3, 6), range(6, 7)]
    assert plan_chunks(np.array([], int), 4, capacity) == []
    with pytest.raises(ToolError, match="sample 1 needs more simulation harness memory"):
        plan_chunks(np.array([4, 11]), 4, capacity)
    membranes = HarnessCapacity(in_beats=10, out_beats=12, samples=3, image_words=1, membrane_beats=5)
    assert plan_chunks(np.array([1] * 5), 1, membranes, membrane_beats=2) == [range(0, 2), range(2, 4), range(4, 5)]
    with pytest.raises(ToolError, match="6 membrane beats of 5"):
        plan_chunks(np.array([1]), 1, membranes, membrane_beats=6)


def test_decode_run_equals_decode_outputs():
    spikes = _spikes(n=5, seed=3)
    fmt = EventFormat(5)
    outputs = np.concatenate([encode_batch(spikes)[0], [fmt.pack(2)]])    # a partial sample after the last
    rasters, problem = decode_run(outputs, len(spikes), 5, 5)
    assert problem == "" and np.array_equal(np.stack(rasters), spikes)
    rasters, problem = decode_run(outputs, len(spikes) + 1, 5, 5)
    assert problem == INCOMPLETE and len(rasters) == len(spikes)


@pytest.mark.parametrize("bad_beats, message", [
    (lambda fmt: [fmt.pack(1), fmt.pack(eot=True, last=True)], "end-of-timestep 0 has last=1"),
    (lambda fmt: [fmt.pack(3), fmt.pack(eot=True), fmt.pack(eot=True, last=True)], "output spike index 3 >= 3"),
    (lambda fmt: [fmt.pack(eot=True)] * 2 + [fmt.pack(eot=True, last=True)], "end-of-timestep 1 has last=0"),
])
def test_decode_run_stops_at_the_first_malformed_sample(bad_beats, message):
    fmt = EventFormat(3)
    good = [fmt.pack(0), fmt.pack(eot=True), fmt.pack(2), fmt.pack(eot=True, last=True)]
    outputs = good + bad_beats(fmt) + good
    with pytest.raises(ValueError, match=message):
        decode_outputs(bad_beats(fmt), 2, 3)
    rasters, problem = decode_run(np.array(outputs), 3, 2, 3)
    assert message in problem and len(rasters) == 1
    assert rasters[0].tolist() == [[1, 0, 0], [0, 0, 1]]
