"""The compiled design directory (OUTDIR): what ``compile`` writes and ``simulate``/``verify`` read.

Files: ``snn_accelerator.v`` (the Verilog, one top module), ``network.json`` (the compiled integer network,
compile options and layer mappings, readable), ``report.json`` and, when layers keep weights in SPRAM,
``spram_weights.bin`` (the words the accelerator's ``w_load`` stream takes after reset, 16-bit
little-endian). A directory is written under a
temporary name beside OUTDIR and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputError, Snn2hwError
from ..ir import Network
from ..passes.mapping import LayerMapping, map_layer

__all__ = ["CompiledDesign", "staged_directory", "check_output_dir", "VERILOG_FILE", "NETWORK_FILE", "REPORT_FILE", "write_json",
           "write_text_atomically"]

VERILOG_FILE = "snn_accelerator.v"
NETWORK_FILE = "network.json"
REPORT_FILE = "report.json"
SPRAM_IMAGE_FILE = "spram_weights.bin"   # SPRAM weight words, 16-bit little-endian (see hw.accelerator)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text_atomically(path, text: str) -> None:
    """Write ``text`` through a temporary sibling renamed into place: never a half-written file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text)
        temporary.replace(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None
    finally:
        temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class CompiledDesign:
    """A compiled design on disk: its directory, network, compile options and layer mappings."""

    path: Path
    network: Network
    options: dict
    mappings: tuple[LayerMapping, ...]

    @property
    def verilog_path(self) -> Path:
        return self.path / VERILOG_FILE

    @property
    def timesteps(self) -> int:
        return int(self.options["timesteps"])

    @classmethod
    def load(cls, outdir) -> "CompiledDesign":
        path = Path(outdir)
        for name in (NETWORK_FILE, VERILOG_FILE):
            if not (path / name).is_file():
                raise OutputError(f"{path} is not a compiled design: {name} is missing (run snn2hw compile)")
        try:
            description = json.loads((path / NETWORK_FILE).read_text())
            network = Network.from_json(description)
            options = description["compile"]
            mappings = _load_mappings(network, description)
        except Snn2hwError as exc:
            raise OutputError(f"{path / NETWORK_FILE}: {exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise OutputError(f"{path / NETWORK_FILE} is malformed ({type(exc).__name__}: {exc})") from None
        return cls(path=path, network=network, options=options, mappings=mappings)


def _load_mappings(network: Network, description: dict) -> tuple[LayerMapping, ...]:
    """The layer mappings as compiled: per-layer lanes, SPRAM lanes, integration lanes, the one-bit weight
    encoding and a convolution's integration by window from ``network.json`` (a design compiled before the one-bit
    encoding existed keeps its two-bit weights, one compiled before windows integrates by kernel offset)."""
    entries = description["mappings"]
    if len(entries) != len(network.layers):
        raise ValueError(f"{len(entries)} mappings for {len(network.layers)} layers")
    return tuple(map_layer(layer, int(entry["lanes"]), int(entry.get("spram_lanes", 0)),
                           int(entry.get("integration_lanes", 0)), bool(entry.get("binary_weights", False)),
                           bool(entry.get("window", False)))
                 for layer, entry in zip(network.layers, entries))


def check_output_dir(outdir, force: bool) -> None:
    """Refuse an output path that is a file, or a non-empty directory unless ``force``."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"output path {outdir} exists and is not a directory")
    if outdir.is_dir() and any(outdir.iterdir()) and not force:
        raise OutputError(f"output directory {outdir} already exists and is not empty (use --force to replace it)")


@contextlib.contextmanager
def staged_directory(outdir, force: bool = False):
    """Yield a fresh temporary directory that replaces ``outdir`` only if the block succeeds.

    An existing non-empty ``outdir`` is an error unless ``force``.
    """
    outdir = Path(outdir)
    check_output_dir(outdir, force)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        yield staging
        if outdir.exists():
            shutil.rmtree(outdir)
        staging.rename(outdir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
