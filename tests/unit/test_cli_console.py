"""The CLI's consoles wrap at the terminal's width, and not at all when the output is a file or a pipe."""

from __future__ import annotations

import io

import pytest

from conveyor.cli.console import UNWRAPPED_WIDTH, cli_console


def test_a_file_gets_whole_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = cli_console()
    console.file = io.StringIO()
    assert console.width == UNWRAPPED_WIDTH
    console.print("x" * 300)
    assert console.file.getvalue() == "x" * 300 + "\n"


def test_columns_wins_over_the_unwrapped_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "72")
    console = cli_console(stderr=True)
    console.file = io.StringIO()
    assert console.width == 72
