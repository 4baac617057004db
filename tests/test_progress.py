"""The progress display: drawn on a terminal, silent otherwise."""

import io

from rich.console import Console

from snn2hw.progress import Progress


def _drawn(actions) -> str:
    buffer = io.StringIO()
    with Progress(True, Console(file=buffer, force_terminal=True, width=100)) as progress:
        actions(progress)
    return buffer.getvalue()  # the display is drawn at least once, when it stops


def test_draws_steps_and_a_bar_on_a_terminal():
    assert "place and route" in _drawn(lambda p: (p.step("synthesis"), p.step("place and route")))
    text = _drawn(lambda p: (p.step("compile"), p.bar("points", 2), p.advance(), p.advance("last point")))
    assert "2/2" in text and "last point" in text


def test_silent_when_disabled_or_not_a_terminal(capsys):
    for enabled in (False, None):  # None: pytest's captured stderr is not a terminal
        with Progress(enabled) as progress:
            progress.step("synthesis")
            progress.bar("points", 3)
            progress.advance()
        assert not progress.enabled
    assert capsys.readouterr().err == ""
