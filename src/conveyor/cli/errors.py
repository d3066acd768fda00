"""Turning what a user got wrong into one clear line and a non-zero exit (a traceback only with --debug).

Exit codes: 2 for a bad config or unknown name given on the command line, 1 for a refused operation,
an unreachable database or one without the schema, a database error (busy, connection lost), or a git
failure.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy.exc import DBAPIError

from conveyor.cli.console import cli_console
from conveyor.config import ConfigError, UnknownName
from conveyor.errors import OperationError
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
            DBAPIError,
        ) as exc:
            if debug:
                raise
            if isinstance(exc, ConfigError):
                for problem in exc.problems:
                    err.print(str(problem), markup=False)
                err.print(f"{len(exc.problems)} problem(s) in the configuration", markup=False)
                sys.exit(2)
            code = 2 if isinstance(exc, UnknownName) else 1
            message = database_error(exc) if isinstance(exc, DBAPIError) else first_line(exc)
            err.print(f"error: {message}", markup=False)
            sys.exit(code)

    return wrapper  # type: ignore[return-value]


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def database_error(exc: DBAPIError) -> str:
    """One line for a failed statement: the driver's own first line (never the SQL), with a hint."""
    said = first_line(exc.orig) if exc.orig is not None else first_line(exc)
    if "database is locked" in said or "could not obtain lock" in said:
        return f"the database is busy ({said}): another process holds it; try again"
    if exc.connection_invalidated or "connection" in said.lower() or "closed" in said.lower():
        return f"lost the connection to the database ({said})"
    if "no such table" in said or "does not exist" in said or "no such column" in said:
        return f"the database does not have the schema conveyor expects ({said}); run `conveyor db upgrade`"
    return f"the database refused a statement: {said}"
