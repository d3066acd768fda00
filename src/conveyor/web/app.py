"""The application factory: one FastAPI app over one config and database, optionally beside a conductor."""

from __future__ import annotations

from fastapi import FastAPI

from conveyor import __version__
from conveyor.config.resolved import Config
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.web.auth import TokenCheck
from conveyor.web.errors import install_error_handlers
from conveyor.web.metrics import registry_for
from conveyor.web.routes import actions, apps, audit, controls, health, holds, records
from conveyor.web.state import ApiState, Wakeable


def create_app(config: Config, db: Database, *, conductor: Wakeable | None = None) -> FastAPI:
    """The HTTP API. With ``conductor``, every write wakes it so the work starts at once."""
    app = FastAPI(
        title="conveyor",
        version=__version__,
        description="Continuous deployment: releases, deployments, holds and the decisions behind them. "
        "Reads are open; writes need `Authorization: Bearer <token>` (see docs/api.md).",
    )
    app.state.conveyor = ApiState(
        config=config,
        db=db,
        operations=Operations(config, db),
        tokens=TokenCheck(config.api_tokens),
        registry=registry_for(db),
        conductor=conductor,
    )
    install_error_handlers(app)
    for module in (health, apps, records, actions, holds, controls, audit):
        app.include_router(module.router)
    return app
