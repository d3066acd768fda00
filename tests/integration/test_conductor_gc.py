"""While a conductor's loop runs, the cyclic collector runs less often (``GC_THRESHOLDS``) and skips what
existed before the loop (frozen); both are given back when the loop ends, so a process that runs
conductors one after another, or goes on to other work, has the collector it had."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

from conveyor.engine.conductor import GC_THRESHOLDS, Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from tests.integration.harness import load, make_app_repo, write_config

CONFIG = """\
environments: [integration]
teams: {shop: {}}
apps:
  shop: {repo: ./repos/shop, team: shop, deploy: {driver: fake}}
"""


def test_the_collector_is_tuned_while_the_loop_runs_and_given_back_after(tmp_path: Path, db_url: str) -> None:
    make_app_repo(tmp_path / "repos" / "shop")
    config = load(write_config(tmp_path, CONFIG))
    db = Database(db_url)
    before = gc.get_threshold()
    seen: list[tuple[tuple[int, ...], int]] = []
    try:
        Operations(config, db).create_release("shop")
        conductor = Conductor(
            config,
            db,
            poll_interval=0.02,
            on_step=lambda step, result: seen.append((gc.get_threshold(), gc.get_freeze_count())),
        )
        conductor.run(threading.Event(), exit_when_idle=True)
    finally:
        db.dispose()
    [(during, frozen)] = seen
    assert during == GC_THRESHOLDS and during != before
    assert frozen > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
