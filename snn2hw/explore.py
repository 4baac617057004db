"""``snn2hw explore``: compile and build one model over a grid of lanes x weight bits, and find the Pareto front.

Each point (lanes, weight bits) is compiled, and built unless ``build=False``, in a worker process. Lanes
are an integer (every layer that many, capped at its width) or ``"auto"`` (each layer's lanes chosen by the
compiler from the board, as ``snn2hw compile --lanes auto``); every point that compiles records the lanes
each layer got (``layer_lanes``). A point's result is cached in ``CACHE_DIR/KEY/`` (``point.json`` and the
design directory), KEY being the SHA-256 of the model file (and its ``.data`` siblings), the board
description, the point's options (a NIR model's ``nir_dt`` and ``reset`` among them) and the snn2hw version,
so a rerun only does the points it has not seen. A point the compiler refuses (too big for the board, weights
that do not fit the weight bits) is listed with its error; a model that cannot be read at all is fatal.

The front is over (logic cells, cycles per inference) for built points, over (block RAMs, cycles per
inference) for compiler estimates (which have no logic count).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import __version__, errors
from .backends import plots
from .backends.boards import BOARDS_DIR, load_board
from .backends.design import write_text_atomically
from .backends.report_text import fmt
from .errors import ModelFormatError, Snn2hwError, ToolError
from .importers import DEFAULT_NIR_DT

__all__ = ["ExploreConfig", "Point", "explore", "evaluate_point", "point_key", "pareto_front", "explore_rows",
           "AUTO", "EXPLORE_FILE", "PLOT_FILE", "POINT_FILE"]

EXPLORE_FILE = "explore.json"
PLOT_FILE = "explore.svg"
POINT_FILE = "point.json"
DESIGN_DIR = "design"
AUTO = "auto"  # lanes chosen per layer by the compiler
# Errors about the model itself, not one point: the same for every point, so explore stops on them.
FATAL_ERRORS = ("ModelFormatError", "UnsupportedModelError")
NIR_RESETS = ("zero", "subtract")


@dataclass(frozen=True)
class ExploreConfig:
    """Everything ``snn2hw explore`` is asked to do; ``weight_bits`` None = the model's own (float: 8).
    ``nir_dt`` and ``reset`` (None: zero) apply to NIR models, as for ``snn2hw compile``."""

    model: str
    outdir: str
    board: str = "ice40"
    lanes: tuple[int | str, ...] = (AUTO, 1, 2, 4, 8)
    weight_bits: tuple[int | None, ...] = (None,)
    timesteps: int = 25
    state_bits: int = 16
    jobs: int = 1
    build: bool = True
    cache_dir: str | None = None
    nir_dt: float = DEFAULT_NIR_DT
    reset: str | None = None
    input_shape: str | None = None   # state dicts: "C,H,W", as snn2hw compile --input-shape

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.outdir) / ".cache"

    def validate(self) -> None:
        if self.jobs < 1:
            raise Snn2hwError(f"--jobs must be >= 1, got {self.jobs}")
        if not self.lanes or not all(lanes == AUTO or (isinstance(lanes, int) and lanes >= 1)
                                     for lanes in self.lanes):
            raise Snn2hwError(f"--lanes must be a list of 'auto' and integers >= 1, got {list(self.lanes)}")
        if any(bits is not None and bits < 2 for bits in self.weight_bits):
            raise Snn2hwError(f"--weight-bits must be integers >= 2, got {list(self.weight_bits)}")
        if not (isinstance(self.nir_dt, (int, float)) and 0 < self.nir_dt < float("inf")):
            raise Snn2hwError(f"--nir-dt must be a finite time step > 0, got {self.nir_dt}")
        if self.reset not in (None, *NIR_RESETS):
            raise Snn2hwError(f"--reset must be one of {', '.join(NIR_RESETS)}, got {self.reset!r}")


@dataclass(frozen=True)
class Point:
    """One design point, as sent to a worker process."""

    model: str
    board: str
    lanes: int | str
    weight_bits: int | None
    timesteps: int
    state_bits: int
    build: bool
    nir_dt: float
    reset: str | None
    input_shape: str | None
    key: str
    directory: str


def _model_digest(model: Path) -> str:
    """SHA-256 of the model file and of ``MODEL.*`` siblings (ONNX external data such as ``model.onnx.data``)."""
    if not model.is_file():
        raise ModelFormatError(f"model file {str(model)!r} does not exist")
    digest = hashlib.sha256()
    for path in [model] + sorted(model.parent.glob(f"{model.name}.*")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def point_key(model_digest: str, board_text: str, options: dict) -> str:
    """The cache key of a point: model bytes, board description, options and snn2hw version."""
    text = json.dumps({"model": model_digest, "board": board_text, "options": options, "version": __version__},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _summary(report: dict) -> dict:
    """A point's figures from its report.json: every resource's use, Fmax, cycles and us per inference, and
    the lanes each layer got."""
    row = {name: use.get("used") for name, use in report["resources"].items() if name != "memory_bits"}
    row["layer_lanes"] = [layer["lanes"] for layer in report["layers"]]
    latency = report["latency"]
    row.update(fmax_mhz=report.get("fmax_mhz"), cycles_per_inference=latency["cycles_per_inference"],
               us_per_inference=latency.get("us_per_inference"), resources_source=report["resources_source"])
    return row


def evaluate_point(point: Point) -> dict:
    """Compile (and build) one point into its cache directory; return its row. Runs in a worker process.

    The row is cached in ``point.json`` unless the failure may be transient (a tool error or a bug)."""
    from .pipeline import CompileConfig, build_outdir, compile_model

    started = time.perf_counter()
    directory = Path(point.directory)
    design = directory / DESIGN_DIR
    row = {"lanes": point.lanes, "weight_bits": point.weight_bits, "key": point.key, "design": str(design)}
    cacheable = True
    try:
        config = CompileConfig(model=point.model, outdir=str(design), board=point.board,
                               state_bits=point.state_bits, timesteps=point.timesteps, lanes=point.lanes,
                               weight_bits=point.weight_bits, nir_dt=point.nir_dt, reset=point.reset,
                               input_shape=point.input_shape,
                               force=True)
        report = compile_model(config).report
        if point.build:
            report = build_outdir(design)
        row.update(status="ok", error=None, **_summary(report))
    except Snn2hwError as exc:
        cacheable = not isinstance(exc, ToolError)
        row.update(status="error", error=str(exc), error_type=type(exc).__name__)
    except Exception as exc:  # a bug in one point must not lose the others
        cacheable = False
        row.update(status="error", error=f"internal error: {type(exc).__name__}: {exc}", error_type="internal")
    row["time_s"] = round(time.perf_counter() - started, 2)
    if cacheable:
        directory.mkdir(parents=True, exist_ok=True)
        write_text_atomically(directory / POINT_FILE, json.dumps(row, indent=2) + "\n")
    return row


def pareto_front(rows: list[dict], x_key: str, y_key: str) -> list[bool]:
    """For each row, whether no other row is at least as good on both keys and better on one (lower is
    better). Rows missing either value are not on the front."""
    def placed(row):
        return row.get(x_key) is not None and row.get(y_key) is not None

    def dominates(a, b):
        return a[x_key] <= b[x_key] and a[y_key] <= b[y_key] and (a[x_key] < b[x_key] or a[y_key] < b[y_key])

    candidates = [row for row in rows if placed(row)]
    return [placed(row) and not any(dominates(other, row) for other in candidates) for row in rows]


def _points(config: ExploreConfig) -> list[Point]:
    board = load_board(config.board)
    if config.build and not board.platform:
        raise Snn2hwError(f"board {board.name!r} is Verilog only: explore it with --no-build")
    digest = _model_digest(Path(config.model))
    board_text = (BOARDS_DIR / f"{board.name}.toml").read_text()
    points = []
    lanes_order = sorted(set(config.lanes), key=lambda lanes: (lanes != AUTO, 0 if lanes == AUTO else lanes))
    bits_order = sorted(set(config.weight_bits), key=lambda bits: (bits is not None, bits or 0))
    for lanes, bits in itertools.product(lanes_order, bits_order):
        options = {"lanes": lanes, "weight_bits": bits, "timesteps": config.timesteps,
                   "state_bits": config.state_bits, "build": config.build, "nir_dt": config.nir_dt,
                   "reset": config.reset, "input_shape": config.input_shape}
        key = point_key(digest, board_text, options)
        points.append(Point(model=str(Path(config.model).resolve()), board=board.name, lanes=lanes,
                            weight_bits=bits, timesteps=config.timesteps, state_bits=config.state_bits,
                            build=config.build, nir_dt=config.nir_dt, reset=config.reset,
                            input_shape=config.input_shape, key=key,
                            directory=str(config.cache_path.resolve() / key[:16])))
    return points


def _cached_row(point: Point) -> dict | None:
    try:
        row = json.loads((Path(point.directory) / POINT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return row if row.get("key") == point.key else None


def _point_name(point: Point) -> str:
    return f"lanes {point.lanes}, weight bits {point.weight_bits or 'model'}"


def _evaluate_all(points: list[Point], jobs: int, advance: Callable[[str], None]) -> list[dict]:
    """Rows in the order of ``points``: cached ones read back, the others computed in ``jobs`` workers."""
    rows: list[dict | None] = [None] * len(points)
    todo = []
    for index, point in enumerate(points):
        rows[index] = _cached_row(point)
        if rows[index] is None:
            todo.append(index)
        else:
            advance(f"{_point_name(point)}: cached")
    if todo:
        # spawn: workers start clean (no copy of the parent's threads, e.g. the progress display)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context) as pool:
            futures = {pool.submit(evaluate_point, points[index]): index for index in todo}
            for future in as_completed(futures):
                index = futures[future]
                rows[index] = future.result()
                rows[index]["cached"] = False
                advance(f"{_point_name(points[index])}: {rows[index]['status']}")
                if rows[index].get("error_type") in FATAL_ERRORS:
                    for other in futures:
                        other.cancel()
                    raise getattr(errors, rows[index]["error_type"])(rows[index]["error"])
    for row in rows:
        row.setdefault("cached", True)
    return rows


def explore(config: ExploreConfig, progress: Callable[[str, int], None] = lambda message, total: None,
            advance: Callable[[str], None] = lambda message: None) -> dict:
    """Evaluate every point, mark the Pareto front, write ``explore.json`` and ``explore.svg`` into
    ``config.outdir``; return the explore.json content. ``progress(message, total)`` is called once, then
    ``advance`` after every point."""
    config.validate()
    started = time.perf_counter()
    points = _points(config)
    progress(f"exploring {len(points)} design points", len(points))
    rows = _evaluate_all(points, config.jobs, advance)
    board = load_board(config.board)
    logic = "LUT" if board.family == "ecp5" else "LC"
    objectives = [logic if config.build else "EBR", "cycles_per_inference"]
    for row, on_front in zip(rows, pareto_front(rows, *objectives)):
        row["pareto"] = on_front
    result = {"snn2hw_version": __version__, "model": Path(config.model).name, "board": board.name,
              "built": config.build, "timesteps": config.timesteps, "state_bits": config.state_bits,
              **_nir_options(config), "objectives": objectives, "cache_dir": str(config.cache_path), "points": rows,
              "time_s": round(time.perf_counter() - started, 2)}
    outdir = Path(config.outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.OutputError(f"cannot create {outdir}: {exc}") from None
    write_text_atomically(outdir / EXPLORE_FILE, json.dumps(result, indent=2) + "\n")
    write_text_atomically(outdir / PLOT_FILE, plots.svg(plots.design_space(result)))
    return result


def _nir_options(config: ExploreConfig) -> dict:
    """``nir_dt`` and ``reset`` as the compiler used them for a NIR model; both None for other formats."""
    if Path(config.model).suffix.lower() != ".nir":
        return {"nir_dt": None, "reset": None}
    return {"nir_dt": config.nir_dt, "reset": config.reset or NIR_RESETS[0]}


def _lanes_label(row: dict) -> str | int:
    """A point's lanes for the table: ``auto (16, 4)`` shows the lanes the compiler gave each layer."""
    if row["lanes"] != AUTO:
        return row["lanes"]
    chosen = row.get("layer_lanes")
    return f"{AUTO} ({', '.join(map(str, chosen))})" if chosen else AUTO


def explore_rows(result: dict) -> list[tuple]:
    """The explore result as table rows (the first is the header): one per point."""
    resources = [name for name in ("LC", "LUT", "EBR", "SPRAM")
                 if any(row.get(name) is not None for row in result["points"])]
    rows = [("lanes", "weight bits", *resources, "Fmax MHz", "cycles", "us", "Pareto", "status")]
    for row in result["points"]:
        status = "ok" if row["status"] == "ok" else f"error: {row['error']}"
        rows.append((_lanes_label(row), row["weight_bits"] or "model",
                     *(fmt(row.get(name)) for name in resources),
                     fmt(row.get("fmax_mhz")), fmt(row.get("cycles_per_inference")),
                     fmt(row.get("us_per_inference")), "*" if row.get("pareto") else "",
                     status + (" (cached)" if row.get("cached") else "")))
    return rows
