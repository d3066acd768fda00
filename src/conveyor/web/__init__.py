"""The HTTP API: the read models and the operations of conveyor over JSON, for tools and the CLI's remote mode.

``create_app(config, db, conductor=...)`` builds the FastAPI application; ``conveyor serve`` runs it with
uvicorn beside a conductor. See docs/api.md for every endpoint, the error shape and authentication.
FastAPI is imported on first use of ``create_app``, so the CLI's other commands (and its remote mode, in
:mod:`conveyor.web.client`) start without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.web.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from conveyor.web.app import create_app

        return create_app
    raise AttributeError(name)
