"""Fuzz the importers with random and mutated model files: every outcome is a model or an Snn2hwError.

The case count comes from SNN2HW_FUZZ_CASES (default 2000 per file kind, so CI stays fast); run
``SNN2HW_FUZZ_CASES=10000 python -m pytest tests/test_importers_fuzz.py`` for the full campaign.
"""

import os

import numpy as np
import pytest

from snn2hw.errors import Snn2hwError
from snn2hw.importers import load_model
from snn2hw.ir import SourceNetwork

from model_factory import (export_nir, export_onnx, make_sequential, make_step_module, per_neuron_sequential,
                           save_state_dict)

CASES = int(os.environ.get("SNN2HW_FUZZ_CASES", "2000"))


def _mutations(seed_bytes: bytes, rng: np.random.Generator):
    """Yield mutated copies: flipped bytes, truncations, spliced random runs, duplicated chunks, pure noise."""
    data = bytearray(seed_bytes)
    while True:
        kind = rng.integers(5)
        mutated = bytearray(data)
        if kind == 0:
            for _ in range(int(rng.integers(1, 8))):
                mutated[int(rng.integers(len(mutated)))] ^= int(rng.integers(1, 256))
        elif kind == 1:
            mutated = mutated[:int(rng.integers(len(mutated)))]
        elif kind == 2:
            at = int(rng.integers(len(mutated)))
            mutated[at:at + int(rng.integers(1, 64))] = rng.integers(0, 256, int(rng.integers(1, 64)),
                                                                      dtype=np.uint8).tobytes()
        elif kind == 3:
            at, size = int(rng.integers(len(mutated))), int(rng.integers(1, 256))
            mutated[at:at] = mutated[at:at + size]
        else:
            mutated = bytearray(rng.integers(0, 256, int(rng.integers(0, 2048)), dtype=np.uint8).tobytes())
        yield bytes(mutated)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    onnx_path = export_onnx(make_step_module([5, 4, 3], thresholds=2.0, seed=1), tmp / "m.onnx", dynamo=False)
    pt_path = save_state_dict(make_sequential([5, 4, 3], resets="zero", seed=2), tmp / "m.pt")
    nir_path = export_nir(per_neuron_sequential([5, 4, 3], 0.75, 1.5, "zero", seed=3), tmp / "m.nir")
    return {".onnx": onnx_path.read_bytes(), ".pt": pt_path.read_bytes(), ".nir": nir_path.read_bytes()}


@pytest.mark.parametrize("suffix", [".onnx", ".pt", ".nir"])
def test_mutated_model_files_never_escape_as_raw_exceptions(seeds, tmp_path, suffix):
    rng = np.random.default_rng(12345)
    path = tmp_path / f"fuzz{suffix}"
    outcomes = {"model": 0, "refused": 0}
    for case, data in zip(range(CASES), _mutations(seeds[suffix], rng)):
        path.write_bytes(data)
        try:
            network = load_model(path)
        except Snn2hwError as exc:
            message = str(exc)
            assert message and "\n" not in message, f"case {case}: multi-line message {message!r}"
            outcomes["refused"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            (tmp_path / f"crash{case}{suffix}").write_bytes(data)
            pytest.fail(f"case {case}: {type(exc).__name__}: {exc} (input kept as crash{case}{suffix})")
        else:
            assert isinstance(network, SourceNetwork)
            outcomes["model"] += 1
    assert outcomes["refused"] > CASES // 2
