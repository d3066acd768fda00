"""The consoles the CLI prints to: as wide as the terminal, and not wrapped at all when piped.

rich wraps at 80 columns when it cannot find a terminal, so ``conveyor status > file`` or ``conveyor why
web | grep`` cut tables and sentences short. :class:`CliConsole` keeps rich's width for a terminal (or
when ``COLUMNS`` is set) and otherwise lets every line be as long as it is.
"""

from __future__ import annotations

import os

from rich.console import Console, ConsoleDimensions

UNWRAPPED_WIDTH = 10_000  # columns when the output is a file or a pipe: lines keep their full length


class CliConsole(Console):
    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal or "COLUMNS" in os.environ:
            return size
        return ConsoleDimensions(UNWRAPPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self.width, self.height = new_size


def cli_console(*, stderr: bool = False) -> Console:
    return CliConsole(stderr=stderr, highlight=False, soft_wrap=True)
