"""Running one claimed step: build the driver's or check's request from config and the release, run
it, and turn whatever happens into a :class:`StepResult`. Nothing a plugin does, raising included,
escapes as an exception: a crash of a plugin is a failed step with the traceback in its log."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor import plugins
from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.runner import run_check
from conveyor.config.resolved import Config
from conveyor.domain.model import StepKind
from conveyor.drivers.base import DeployRequest, Driver
from conveyor.engine.leases import ClaimedStep, StepResult
from conveyor.repos import mirror_path_for
from conveyor.steps import StepContext


class StepLog:
    """Collects a running step's lines; the heartbeat drains them into the database in batches."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact
        self._pending: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        with self._lock:
            self._pending.append(f"{stamp} {self._redact(line.rstrip())}\n")

    def drain(self) -> str:
        with self._lock:
            text, self._pending = "".join(self._pending), []
        return text


def env_state_dir(config: Config, app: str, environment: str) -> Path:
    return config.state_dir / "envs" / app / environment


class Executor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._instances: dict[type[Any], Any] = {}
        self._lock = threading.Lock()

    def _instance(self, cls: type[Any]) -> Any:
        with self._lock:
            if cls not in self._instances:
                self._instances[cls] = cls()
            return self._instances[cls]

    def run(self, step: ClaimedStep, ctx: StepContext) -> StepResult:
        try:
            if step.kind == StepKind.DEPLOY:
                return self._deploy(step, ctx)
            return self._check(step, ctx)
        except Exception as exc:  # a plugin's bug must not take the engine down
            for line in traceback.format_exc().splitlines():
                ctx.log(line)
            return StepResult(False, f"{step.kind} crashed: {exc!r}", [], {})

    def _deploy(self, step: ClaimedStep, ctx: StepContext) -> StepResult:
        app = self.config.app(step.app)
        env = app.environments[step.environment]
        driver: Driver = self._instance(plugins.driver_class(env.deploy.driver))
        request = DeployRequest(
            app=step.app,
            environment=step.environment,
            version=step.label,
            sha=step.sha,
            repo=str(mirror_path_for(self.config.state_dir, step.app)),
            vars=env.vars,
            options=env.deploy.options,
            state_dir=env_state_dir(self.config, step.app, step.environment),
            step_id=step.step_id,
            attempt=step.attempt,
            lease_expires_at=step.lease_expires_at,
        )
        request.state_dir.mkdir(parents=True, exist_ok=True)
        driver_name = env.deploy.driver
        ctx.log(f"deploying {step.label} ({step.sha[:12]}) with driver {driver_name}, attempt {step.attempt}")
        result = driver.deploy(request, ctx)
        outcome = result.message or ("deployed" if result.ok else "deploy failed")
        return StepResult(result.ok, outcome, [], {"driver": env.deploy.driver, **result.details})

    def _check(self, step: ClaimedStep, ctx: StepContext) -> StepResult:
        app = self.config.app(step.app)
        env = app.environments[step.environment]
        spec = next((c for c in env.checks if c.name == step.name), None)
        if spec is None:
            return StepResult(False, f"check {step.name!r} is no longer in the config", [], {})
        check: Check = self._instance(plugins.check_class(spec.type))
        request = CheckRequest(
            app=step.app,
            environment=step.environment,
            version=step.label,
            sha=step.sha,
            vars=env.vars,
            options=spec.options,
            state_dir=env_state_dir(self.config, step.app, step.environment),
            repo=str(mirror_path_for(self.config.state_dir, step.app)),
            step_id=step.step_id,
            attempt=step.attempt,
            lease_expires_at=step.lease_expires_at,
        )
        measurements, outcome = run_check(check, request, spec.limits, ctx)
        return StepResult(
            outcome.ok,
            outcome.reason,
            [m.to_json() for m in measurements],
            {"phase": outcome.phase, "counts": outcome.counts, "type": spec.type},
        )
