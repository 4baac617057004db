"""Board descriptions: one TOML file per board in the repository's ``boards/`` folder."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Snn2hwError

__all__ = ["Board", "load_board", "board_names", "BOARDS_DIR"]

BOARDS_DIR = Path(__file__).resolve().parents[2] / "boards"


@dataclass(frozen=True)
class Board:
    """A target: device identity, the resources it has (``LC``, ``EBR``, ...) and memory block sizes."""

    name: str
    title: str
    family: str
    device: str
    platform: str
    clock_mhz: float
    resources: dict[str, int] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)


def board_names() -> list[str]:
    return sorted(path.stem for path in BOARDS_DIR.glob("*.toml"))


def load_board(name: str) -> Board:
    path = BOARDS_DIR / f"{name}.toml"
    if not path.is_file():
        raise Snn2hwError(f"unknown board {name!r}; known boards: {', '.join(board_names()) or 'none'}")
    with path.open("rb") as file:
        description = tomllib.load(file)
    return Board(**description)
