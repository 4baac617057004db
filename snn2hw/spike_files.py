"""Reading spike arrays that users hand to the CLI as ``.npy`` files."""

from __future__ import annotations

import numpy as np

from .errors import Snn2hwError

__all__ = ["load_npy"]


def load_npy(path: str, what: str) -> np.ndarray:
    """The array in the ``.npy`` file ``path``; a missing, empty, truncated or foreign file raises a one-line
    :class:`~snn2hw.errors.Snn2hwError` naming ``what`` (e.g. ``"input file"``) and the path."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise Snn2hwError(f"{what} {path!r} does not exist") from None
    except EOFError:
        raise Snn2hwError(f"{what} {path!r} is empty or truncated (expected a .npy array)") from None
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Snn2hwError(f"{what} {path!r} is not a .npy array ({reason})") from None
