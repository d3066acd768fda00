"""The check interface: one measurement of a deployed release.

A check takes one :class:`Measurement` per call; the runner calls it ``count`` times, ``interval``
apart, after ``initial_delay``, and the pure judge (:mod:`conveyor.domain.judge`) turns the list into
an outcome using the limits from config. A check never raises for the thing it measures: a refused
connection or a timeout is a measurement in phase ``error``; a wrong answer is ``fail``; an answer that
neither passes nor fails is ``inconclusive``. An exception escaping a check is recorded by the runner
as an ``error`` measurement, never a crash of the engine.

Example::

    class AlwaysOk(Check):
        name = "always-ok"

        def measure(self, request: CheckRequest, ctx: StepContext) -> Measurement:
            return Measurement.passed("fine")

A check that reads per-environment vars declares them in ``Vars`` (field names and types), as drivers
do; ``conveyor check`` reports a missing or mistyped one per environment.

A check that may put the release itself into an option (a PromQL query or an alert matcher naming the
version) lists those placeholders in ``release_placeholders`` (``version``, ``sha``): the config loader
then leaves ``{version}`` in its options, and the check fills it when it measures, with
:func:`conveyor.checks.release_text.fill_release`, which refuses a version that is not plain text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from conveyor.domain.model import Measurement
from conveyor.steps import StepContext
from conveyor.supervisor import release_environ

__all__ = ["Check", "CheckRequest", "Measurement", "NoOptions", "NoVars"]


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoVars(BaseModel):
    """A check that reads no vars; every var the app has is left alone (vars are shared by all plugins)."""


@dataclass(frozen=True)
class CheckRequest:
    """One check of a deployed release; the fields mean what they mean on a ``DeployRequest``.

    What the engine knows about the deploy being checked, for checks that compare before with after
    (``error_rate``): ``deploy_started_at`` and ``deployed_at``, when this deployment's deploy step
    started and finished; ``previous_version`` and ``previous_deployed_at``, the release that ran in the
    environment before it and when that one's deploy finished (None: nothing ran there before). And
    ``database_url``, conveyor's own database, for checks that read what conveyor stores (error counts).
    """

    app: str
    environment: str
    version: str
    sha: str
    vars: Mapping[str, str]
    options: BaseModel
    state_dir: Path
    repo: str = ""
    attempt: int = 1
    lease_expires_at: datetime | None = None
    step_id: int | None = None
    deploy_started_at: datetime | None = None
    deployed_at: datetime | None = None
    previous_version: str | None = None
    previous_deployed_at: datetime | None = None
    database_url: str = ""

    def environ(self) -> dict[str, str]:
        """The environment variables every process a check starts should carry."""
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


class Check(ABC):
    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    Vars: ClassVar[type[BaseModel]] = NoVars  # the vars it reads, validated per environment by the config loader
    release_placeholders: ClassVar[tuple[str, ...]] = ()  # filled at measure time (see the module docstring)

    @abstractmethod
    def measure(self, request: CheckRequest, ctx: StepContext) -> Measurement:
        """Take one measurement. Never raises for what it measures."""
