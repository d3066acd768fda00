"""Running one claimed step: build the driver's or check's request from config and the release, run
it, and turn whatever happens into a :class:`StepResult`. Nothing a plugin does, raising included,
escapes as an exception: a plugin that raises anything (``sys.exit()`` and ``KeyboardInterrupt``
included) fails its step, with one line in the step's log and the traceback in the process log.

How long a step may take is the config's ``step_timeout`` (:meth:`Executor.step_timeout`); the conductor
enforces it, since a plugin that hangs cannot be trusted to honour anything."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from conveyor import plugins
from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.runner import run_check
from conveyor.config.resolved import Config
from conveyor.config.schema import DEFAULT_DEPLOY_TIMEOUT
from conveyor.domain.model import StepKind
from conveyor.drivers.base import DeployRequest, DeployResult, Driver
from conveyor.engine.leases import ClaimedStep, StepResult
from conveyor.repos import mirror_path_for
from conveyor.steps import StepContext
from conveyor.store.database import Database
from conveyor.store.deploy_facts import DeployFacts, deploy_facts

log = logging.getLogger(__name__)


def env_state_dir(config: Config, app: str, environment: str) -> Path:
    return config.state_dir / "envs" / app / environment


class Executor:
    """Runs claimed steps. With ``db``, a check's request carries the facts of the deploy it checks
    (:mod:`conveyor.store.deploy_facts`); without one (unit tests), those fields are None."""

    def __init__(self, config: Config, db: Database | None = None) -> None:
        self.config = config
        self.db = db
        self._instances: dict[type[Any], Any] = {}
        self._lock = threading.Lock()
        # the paths each (app, environment) is given, worked out once: a thousand steps starting together
        # built the same ones over and over
        self._paths: dict[tuple[str, str], tuple[str, Path]] = {}

    def _paths_of(self, app: str, environment: str) -> tuple[str, Path]:
        """The app's mirror (as text) and the environment's state folder."""
        paths = self._paths.get((app, environment))
        if paths is None:
            paths = str(mirror_path_for(self.config.state_dir, app)), env_state_dir(self.config, app, environment)
            self._paths[(app, environment)] = paths
        return paths

    def _instance(self, cls: type[Any]) -> Any:
        with self._lock:
            if cls not in self._instances:
                self._instances[cls] = cls()
            return self._instances[cls]

    def step_timeout(self, step: ClaimedStep) -> float:
        """Seconds the step may run before the engine fails it (the config's ``step_timeout``)."""
        app = self.config.apps.get(step.app)
        env = app.environments.get(step.environment) if app else None
        if env is None:
            return DEFAULT_DEPLOY_TIMEOUT  # gone from the config: the step fails at once anyway
        if step.kind == StepKind.DEPLOY:
            return env.deploy.step_timeout
        spec = next((c for c in env.checks if c.name == step.name), None)
        return spec.step_timeout if spec else DEFAULT_DEPLOY_TIMEOUT

    def runs_async(self, step: ClaimedStep) -> bool:
        """Whether the step runs as a coroutine on the step loop (:meth:`run_async`) rather than on a
        thread (:meth:`run`): a deploy whose driver is written as a coroutine. Whatever cannot be
        worked out here (an app or driver gone from the config) runs on a thread, which reports it."""
        if step.kind != StepKind.DEPLOY:
            return False
        app = self.config.apps.get(step.app)
        env = app.environments.get(step.environment) if app else None
        if env is None:
            return False
        try:
            driver: Driver = self._instance(plugins.driver_class(env.deploy.driver))
            return driver.runs_async(env.deploy.options)
        except Exception:
            return False

    def run(self, step: ClaimedStep, ctx: StepContext) -> StepResult:
        try:
            if step.kind == StepKind.DEPLOY:
                driver, request = self._deploy_request(step, ctx)
                return self._deployed(request, driver.deploy(request, ctx))
            return self._check(step, ctx)
        except BaseException as exc:  # sys.exit() in a plugin fails its step, never the worker
            return self._crashed(step, ctx, exc)

    async def run_async(self, step: ClaimedStep, ctx: StepContext) -> StepResult:
        """:meth:`run` for a deploy whose driver is a coroutine; never raises but for its own cancellation."""
        try:
            driver, request = self._deploy_request(step, ctx)
            return self._deployed(request, await driver.deploy_async(request, ctx))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            return self._crashed(step, ctx, exc)

    def _crashed(self, step: ClaimedStep, ctx: StepContext, exc: BaseException) -> StepResult:
        what = f"{step.kind} {step.name} crashed: {type(exc).__name__}: {exc}".splitlines()[0]
        log.error(
            "step %s (%s %s, %s %s): %s",
            step.step_id,
            step.app,
            step.environment,
            step.kind,
            step.name,
            what,
            exc_info=exc,
        )
        ctx.log(f"{what} (traceback in the worker's log)")
        return StepResult(False, what, [], {"crashed": type(exc).__name__})

    def _deploy_request(self, step: ClaimedStep, ctx: StepContext) -> tuple[Driver, DeployRequest]:
        app = self.config.app(step.app)
        env = app.environments[step.environment]
        driver: Driver = self._instance(plugins.driver_class(env.deploy.driver))
        repo, state_dir = self._paths_of(step.app, step.environment)
        request = DeployRequest(
            app=step.app,
            environment=step.environment,
            version=step.label,
            sha=step.sha,
            repo=repo,
            vars=env.vars,
            options=env.deploy.options,
            state_dir=state_dir,
            step_id=step.step_id,
            attempt=step.attempt,
            lease_expires_at=step.lease_expires_at,
        )
        if driver.uses_state_dir:
            request.state_dir.mkdir(parents=True, exist_ok=True)
        driver_name = env.deploy.driver
        ctx.log(f"deploying {step.label} ({step.sha[:12]}) with driver {driver_name}, attempt {step.attempt}")
        return driver, request

    def _deployed(self, request: DeployRequest, result: DeployResult) -> StepResult:
        driver_name = self.config.app(request.app).environments[request.environment].deploy.driver
        outcome = result.message or ("deployed" if result.ok else "deploy failed")
        stopped = {"previous_stopped": True} if result.previous_stopped and not result.ok else {}
        return StepResult(result.ok, outcome, [], {"driver": driver_name, **result.details, **stopped})

    def _check(self, step: ClaimedStep, ctx: StepContext) -> StepResult:
        app = self.config.app(step.app)
        env = app.environments[step.environment]
        spec = next((c for c in env.checks if c.name == step.name), None)
        if spec is None:
            return StepResult(False, f"check {step.name!r} is no longer in the config", [], {})
        check: Check = self._instance(plugins.check_class(spec.type))
        facts = self._deploy_facts(step.deployment_id)
        repo, state_dir = self._paths_of(step.app, step.environment)
        request = CheckRequest(
            app=step.app,
            environment=step.environment,
            version=step.label,
            sha=step.sha,
            vars=env.vars,
            options=spec.options,
            state_dir=state_dir,
            repo=repo,
            step_id=step.step_id,
            attempt=step.attempt,
            lease_expires_at=step.lease_expires_at,
            deploy_started_at=facts.deploy_started_at,
            deployed_at=facts.deployed_at,
            previous_version=facts.previous_version,
            previous_deployed_at=facts.previous_deployed_at,
            database_url=self.config.database_url,
        )
        measurements, outcome = run_check(check, request, spec.limits, ctx)
        return StepResult(
            outcome.ok,
            outcome.reason,
            [m.to_json() for m in measurements],
            {"phase": outcome.phase, "counts": outcome.counts, "type": spec.type},
        )

    def _deploy_facts(self, deployment_id: int) -> DeployFacts:
        if self.db is None:
            return DeployFacts()
        with self.db.read() as session:
            return deploy_facts(session, deployment_id)
