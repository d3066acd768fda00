"""What every route needs, attached to the app once: config, database, operations, metrics, conductor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol, runtime_checkable

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry

from conveyor.config.resolved import Config
from conveyor.operations import Operations
from conveyor.store.database import Database


class Wakeable(Protocol):
    def wake(self) -> None: ...


@runtime_checkable
class ChoreRunner(Protocol):
    def run_chore(self, name: str) -> None: ...


@dataclass(frozen=True)
class ApiState:
    config: Config
    db: Database
    operations: Operations
    registry: CollectorRegistry
    conductor: Wakeable | None = None

    def wake(self) -> None:
        """Let an attached conductor start on a write at once instead of at its next poll."""
        if self.conductor is not None:
            self.conductor.wake()

    def run_chore(self, name: str) -> None:
        """Let an attached conductor run chore ``name`` at once (a webhook delivery was recorded)."""
        if isinstance(self.conductor, ChoreRunner):
            self.conductor.run_chore(name)


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.conveyor
    return state


State = Annotated[ApiState, Depends(_state)]
