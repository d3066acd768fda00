"""Turning what a user got wrong into one clear line and a non-zero exit (a traceback only with --debug).

Exit codes: 2 for a bad config or unknown name given on the command line, 1 for a refused operation,
an unreachable database, or a git failure.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from conveyor.cli.console import cli_console
from conveyor.config import ConfigError, UnknownName
from conveyor.operations import OperationError
from conveyor.plugins import UnknownPlugin
from conveyor.repos import GitError, UnknownRef
from conveyor.store.database import DatabaseUnreachable

F = TypeVar("F", bound=Callable[..., Any])

err = cli_console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    sys.exit(code)


def friendly_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except (
            ConfigError,
            UnknownName,
            OperationError,
            DatabaseUnreachable,
            UnknownRef,
            GitError,
            UnknownPlugin,
        ) as exc:
            if debug:
                raise
            if isinstance(exc, ConfigError):
                for problem in exc.problems:
                    err.print(str(problem), markup=False)
                err.print(f"{len(exc.problems)} problem(s) in the configuration", markup=False)
                sys.exit(2)
            code = 2 if isinstance(exc, UnknownName) else 1
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            err.print(f"error: {lines[0]}", markup=False)
            sys.exit(code)

    return wrapper  # type: ignore[return-value]
