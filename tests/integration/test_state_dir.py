"""The runner creates a deploy's ``state_dir`` for drivers that keep files there, and for no other.

A driver keeps the default (``uses_state_dir = True``) and finds its folder made before ``deploy``; the
``fake`` and ``command`` drivers keep nothing of their own, so no folder is made for them: a thousand
new places deploying at once each paid a directory creation on the deploy's thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor import plugins
from conveyor.drivers.base import DeployRequest, DeployResult, Driver
from conveyor.engine.executor import env_state_dir
from conveyor.operations import Operations
from conveyor.steps import StepContext
from conveyor.store.database import Database
from tests.integration.harness import deployments, load, make_app_repo, run_until_idle, write_config


class KeepingDriver(Driver):
    """A third-party driver as written before the attribute existed: it relies on its folder existing."""

    name = "keeping"

    def deploy(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        (request.state_dir / "deployed").write_text(request.sha)  # no mkdir of its own
        return DeployResult(ok=True, message="kept")


CONFIG = """\
environments: [integration, production]
teams: {shop: {}}
apps:
  keeper: {repo: ./repos/keeper, team: shop, deploy: {driver: keeping}}
  faked: {repo: ./repos/faked, team: shop, deploy: {driver: fake}}
  commanded: {repo: ./repos/commanded, team: shop, deploy: {driver: command, argv: [\"true\"]}}
"""


def test_only_drivers_that_keep_files_get_a_state_folder(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = plugins._load

    def with_keeping(group: str) -> dict[str, Any]:
        return {**real(group), **({"keeping": KeepingDriver} if group == plugins.DRIVER_GROUP else {})}

    monkeypatch.setattr(plugins, "_load", with_keeping)
    shas = {app: make_app_repo(tmp_path / "repos" / app) for app in ("keeper", "faked", "commanded")}
    config = load(write_config(tmp_path, CONFIG))
    db = Database(db_url)
    try:
        ops = Operations(config, db)
        for app in shas:
            ops.create_release(app)
        run_until_idle(config, db_url, timeout=60)
        for app in shas:
            assert [d.state for d, _ in deployments(db, app)] == ["succeeded", "succeeded"], app
    finally:
        db.dispose()
    for env in ("integration", "production"):
        assert (env_state_dir(config, "keeper", env) / "deployed").read_text() == shas["keeper"]
        assert not env_state_dir(config, "faked", env).exists()
        assert not env_state_dir(config, "commanded", env).exists()
