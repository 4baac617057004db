"""Progress display for long commands (rich), on an interactive stderr only.

A :class:`Progress` shows either a spinner with the current step (:meth:`Progress.step`) or a bar over a
known number of items (:meth:`Progress.bar`, :meth:`Progress.advance`). When stderr is not a terminal, or
the user asked for ``--quiet``/``--json``, every method does nothing, so that piped output and the stderr of
a failed run stay clean.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, SpinnerColumn, TaskID,
                           TextColumn, TimeElapsedColumn)

__all__ = ["Progress"]


class Progress:
    """A context manager; ``enabled=None`` means: only if stderr is a terminal."""

    def __init__(self, enabled: bool | None = None, console: Console | None = None):
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._rich = None
        self._task: TaskID | None = None
        self._total: int | None = None
        if enabled:
            self._rich = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=console or Console(stderr=True), transient=True)

    @property
    def enabled(self) -> bool:
        return self._rich is not None

    def __enter__(self) -> "Progress":
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._rich is not None:
            self._rich.stop()

    def step(self, message: str) -> None:
        """Show ``message`` as the current step of an open-ended task (a spinner and the elapsed time)."""
        self._show(message, total=None)

    def bar(self, message: str, total: int) -> None:
        """Start a bar of ``total`` items."""
        self._show(message, total=total)

    def advance(self, message: str | None = None) -> None:
        """One more item of the bar done; optionally change its text."""
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, advance=1, **({"description": message} if message else {}))

    def _show(self, message: str, total: int | None) -> None:
        if self._rich is None:
            return
        if self._task is not None and total is None and self._total is None:
            self._rich.update(self._task, description=message)
            return
        if self._task is not None:
            self._rich.remove_task(self._task)
        self._task, self._total = self._rich.add_task(message, total=total), total
