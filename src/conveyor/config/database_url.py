"""Whether a ``database_url`` can be conveyor's database, decided from the text alone.

Read by ``conveyor check`` (a problem at the key's FILE:LINE:COL) and by the store before it connects;
it parses the URL's scheme itself (``backend[+driver]://...``, as SQLAlchemy writes them), so reading a
config never imports the database layer.
"""

from __future__ import annotations

import re

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
_URL = re.compile(r"^(?P<backend>[A-Za-z][\w]*)(?:\+(?P<driver>[\w]+))?://(?P<rest>.*)$", re.DOTALL)


def database_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a conveyor database, or None when it can."""
    found = _URL.match(url)
    if found is None:
        return f"database_url {url!r} is not a database URL (expected sqlite:///PATH or postgresql+psycopg://...)"
    backend = found["backend"].lower()
    if backend not in SUPPORTED_BACKENDS:
        return f"database_url uses {backend!r}; conveyor supports {' and '.join(SUPPORTED_BACKENDS)}"
    if backend == "sqlite":
        rest = found["rest"].split("?", 1)[0]
        database = rest[1:] if rest.startswith("/") else rest
        if database in ("", ":memory:"):
            return (
                "database_url names an in-memory SQLite database, which every connection sees empty; "
                "conveyor's commands and threads share one database: give a file (sqlite:///PATH)"
            )
    return None
