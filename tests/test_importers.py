"""load_model's dispatch and the checks common to every importer."""

import numpy as np
import pytest

from snn2hw.errors import ModelFormatError

from importer_checks import assert_import_fails

UNREADABLE = {".onnx": "x.onnx", ".pt": "not a readable PyTorch file", ".pth": "not a readable PyTorch file",
              ".nir": "not a readable NIR file"}


@pytest.mark.parametrize("suffix", sorted(UNREADABLE))
def test_missing_file(tmp_path, suffix):
    assert_import_fails(ModelFormatError, tmp_path / f"x{suffix}", f"x{suffix}", "does not exist")


@pytest.mark.parametrize("suffix", sorted(UNREADABLE))
def test_empty_file(tmp_path, suffix):
    (tmp_path / f"x{suffix}").write_bytes(b"")
    assert_import_fails(ModelFormatError, tmp_path / f"x{suffix}", f"x{suffix}", "is empty")


@pytest.mark.parametrize("suffix", sorted(UNREADABLE))
def test_random_bytes(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_import_fails(ModelFormatError, path, f"x{suffix}", UNREADABLE[suffix])
