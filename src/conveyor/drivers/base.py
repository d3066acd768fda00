"""The deploy-target interface.

A driver knows how to put one version of one app into one environment. The runner calls
:meth:`Driver.deploy` inside a leased step; a crash means the same call may run again, so a driver
must be idempotent: "deploy version X of app A to environment E" twice has the effect of once.

Release facts (app, environment, version, SHA, repository) reach the driver in a :class:`DeployRequest`
and, for anything it runs, only as environment variables or argv elements, never through a shell.

Example, a driver that records what it deployed::

    class EchoOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        target: str

    class EchoDriver(Driver):
        name = "echo"
        Options = EchoOptions

        def deploy(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
            opts = cast(EchoOptions, request.options)
            ctx.log(f"deploying {request.version} to {opts.target}")
            return DeployResult(ok=True, message=f"{request.version} on {opts.target}")

A driver that only waits on I/O (an HTTP API, a rollout to poll) may be written as a coroutine instead:
it overrides ``deploy_async`` rather than ``deploy``, waits with ``await ctx.sleep(seconds)`` and never
blocks, and then runs on the runner's one event loop rather than on a thread of its own: a thousand
such deploys at once are a thousand tasks, not a thousand threads.

Register it under the ``conveyor.drivers`` entry-point group; config then accepts
``deploy: {driver: echo, target: ...}``, with the options validated by ``Options``.

A driver that reads per-environment vars declares them in ``Vars``, a model whose fields are the var
names it needs and their types (``port: int``); ``conveyor check`` then reports a var that is missing or
of the wrong type, per environment, before anything is deployed.
"""

from __future__ import annotations

import asyncio
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from conveyor.steps import StepContext
from conveyor.supervisor import release_environ


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoVars(BaseModel):
    """A plugin that reads no vars; every var the app has is left alone (vars are shared by all plugins)."""


@dataclass(frozen=True)
class DeployRequest:
    """One release going to one environment.

    ``repo`` is the path of conveyor's mirror clone of the app's repository (a bare git repository in
    the state folder) so drivers can check out ``sha`` without touching the network. ``vars`` are the
    per-environment variables from config, already as strings. ``state_dir`` is a folder this driver may
    keep files in for this (app, environment): checkouts, pid files, logs. ``step_id`` names the step,
    ``attempt`` counts its runs (a crash re-runs it) and ``lease_expires_at`` is when the step's lease ran
    out as of its claim: the fencing facts a deploy script gets as ``CONVEYOR_STEP_ID``,
    ``CONVEYOR_ATTEMPT`` and ``CONVEYOR_LEASE_EXPIRES_AT``.
    """

    app: str
    environment: str
    version: str
    sha: str
    repo: str
    vars: Mapping[str, str]
    options: BaseModel
    state_dir: Path
    attempt: int = 1
    lease_expires_at: datetime | None = None
    step_id: int | None = None

    def environ(self) -> dict[str, str]:
        """The environment variables every process a driver starts should carry."""
        return release_environ(
            app=self.app,
            environment=self.environment,
            version=self.version,
            sha=self.sha,
            repo=self.repo,
            vars=self.vars,
            step_id=self.step_id,
            attempt=self.attempt,
            lease_expires_at=self.lease_expires_at,
        )


@dataclass(frozen=True)
class DeployResult:
    ok: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # a failed deploy that had already stopped the version running before it: nothing runs there now
    previous_stopped: bool = False


class Driver(ABC):
    """Puts a version of an app into an environment. Subclasses set ``name``, ``Options`` and ``Vars``."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    Vars: ClassVar[type[BaseModel]] = NoVars  # the vars it reads, validated per environment by the config loader
    # The runner creates ``request.state_dir`` before each deploy. A driver that keeps no files of its own
    # says False: no folder is made for it (creating one costs a filesystem write on the deploy's path).
    uses_state_dir: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.deploy is Driver.deploy and cls.deploy_async is Driver.deploy_async:
            raise TypeError(f"driver {cls.__name__} must define deploy() or deploy_async()")

    def runs_async(self, options: BaseModel) -> bool:
        """Whether a deploy with these options runs as a coroutine on the runner's event loop
        (:meth:`deploy_async`) rather than on a thread of its own (:meth:`deploy`)."""
        return type(self).deploy_async is not Driver.deploy_async

    def deploy(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        """Deploy and return the outcome. Must honour ``ctx.cancelled`` and never raise for an
        expected failure (a non-zero exit, a timeout): return ``DeployResult(ok=False, ...)``.

        A driver defines this or :meth:`deploy_async`; for one written as a coroutine, this runs it to
        the end on an event loop of its own (for callers outside the runner)."""
        return asyncio.run(self.deploy_async(request, ctx))

    async def deploy_async(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        """:meth:`deploy` as a coroutine, which the runner awaits on its one event loop: it must never
        block (``await ctx.sleep(seconds)``, not ``time.sleep``), since every deploy written this way
        shares that loop."""
        raise NotImplementedError  # never called: the runner calls deploy() of a driver that has no coroutine

    def teardown(self, app: str, environment: str, state_dir: Path, ctx: StepContext) -> DeployResult:
        """Remove what ``deploy`` put in place (review apps, demo shutdown). Default: nothing to do."""
        return DeployResult(ok=True, message="nothing to tear down")
