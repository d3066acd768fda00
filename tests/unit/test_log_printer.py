"""How ``conveyor logs`` closes a step: its state, then its outcome unless the outcome only repeats it."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from conveyor.cli.logs import LogPrinter


def _answer(state: str, outcome: str) -> dict[str, Any]:
    step = {
        "id": 1,
        "kind": "deploy",
        "name": "deploy",
        "state": state,
        "outcome": outcome,
        "log": "12:00:00 deploying\n",
        "attempts": [
            {"attempt": 1, "owner": "w", "outcome": outcome, "started_at": None, "finished_at": None},
        ],
    }
    deployment = {
        "id": 7,
        "release": "v1",
        "sha": "a" * 40,
        "environment": "staging",
        "created_by": "cli:an-operator",
        "state": "cancelled",
        "summary": "",
    }
    return {"app": "web", "deployment": deployment, "steps": [step]}


def _printed(state: str, outcome: str) -> list[str]:
    out = io.StringIO()
    LogPrinter(Console(file=out, width=200, color_system=None)).show(_answer(state, outcome), final=True)
    return out.getvalue().splitlines()


def test_an_outcome_that_only_repeats_the_state_is_not_printed_twice() -> None:
    assert "  cancelled" in _printed("cancelled", "cancelled")


def test_an_outcome_that_says_more_follows_the_state() -> None:
    assert "  failed: exited with code 2" in _printed("failed", "exited with code 2")
