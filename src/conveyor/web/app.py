"""The application factory: one FastAPI app over one config and database, optionally beside a conductor."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.routing import BaseRoute

from conveyor import __version__
from conveyor.config.resolved import Config
from conveyor.error_intake.intake import Intake
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.web.auth import TokenCheck
from conveyor.web.errors import install_error_handlers
from conveyor.web.gate import RequestGate, route_caps
from conveyor.web.metrics import registry_for
from conveyor.web.openapi import describe_environments
from conveyor.web.routes import (
    actions,
    alertmanager,
    apps,
    audit,
    controls,
    error_intake,
    error_issues,
    github_deliveries,
    health,
    holds,
    hooks,
    records,
)
from conveyor.web.state import ApiState, Wakeable


def _takes_actor(route: BaseRoute) -> bool:
    """Whether ``route`` depends, at any depth, on the token's actor (see ``routes.actions.Actor``)."""
    found = getattr(route, "dependant", None)
    stack = [found] if found is not None else []
    while stack:
        dependant = stack.pop()
        if dependant.call is actions.token_actor:
            return True
        stack.extend(dependant.dependencies)
    return False


def create_app(config: Config, db: Database, *, conductor: Wakeable | None = None) -> FastAPI:
    """The HTTP API. With ``conductor``, every write wakes it so the work starts at once."""
    # /docs (Swagger UI) and /redoc with their scripts and styles served from the package, not a CDN, so they
    # work on a network without the internet; no validator badge, which would send the schema's URL out.
    app = FastAPIOffline(
        title="conveyor",
        version=__version__,
        description="Continuous deployment: releases, deployments, holds and the decisions behind them. "
        "Reads are open; writes need `Authorization: Bearer <token>` (see docs/api.md).",
        swagger_ui_parameters={"validatorUrl": None},
        static_url="/docs/assets",
    )
    app.state.conveyor = ApiState(
        config=config,
        db=db,
        operations=Operations(config, db),
        registry=registry_for(db, config),
        conductor=conductor,
    )
    describe_environments(app, config.environments)
    install_error_handlers(app)
    routers = [
        module.router
        for module in (
            health,
            apps,
            records,
            actions,
            holds,
            controls,
            audit,
            alertmanager,
            hooks,
            github_deliveries,
            error_issues,
        )
    ]
    intake = Intake(config, db)
    routers.append(error_intake.router_for(intake))  # Sentry SDKs; their own keys, their own body cap
    for router in routers:
        app.include_router(router)
    # every route that takes an Actor needs a token; the gate checks it before any body is read
    writes = [r for router in routers for r in router.routes if _takes_actor(r)]
    app.add_middleware(
        RequestGate,
        tokens=TokenCheck(config.api_tokens),
        writes=writes,
        max_body_bytes=config.api_max_body_bytes,
        caps=route_caps([r for router in routers for r in router.routes]),
    )
    app.add_middleware(error_intake.IntakeFastPath, intake=intake)  # outside the gate: SDKs carry no token
    return app
