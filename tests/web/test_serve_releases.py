"""Parallel ``POST /api/apps/APP/releases`` against a real ``conveyor serve``: every answer is 2xx and each
commit becomes one release, for one app and for ten apps at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.gitrepos import commit, head, make_repo
from tests.web.conftest import TOKEN
from tests.web.test_serve import CONFIG, start

APPS = [f"app{i}" for i in range(10)]


def test_parallel_releases_through_serve_are_all_answered_and_made_once(tmp_path: Path) -> None:
    for name in APPS:
        make_repo(tmp_path / "repos" / name, {"app.py": f"print({name!r})\n"}, f"{name}: first commit")
    extra = "".join(f"  {name}: {{repo: ./repos/{name}, team: publishing}}\n" for name in APPS)
    live = start(tmp_path, CONFIG.replace("\napi:\n", f"\n{extra}api:\n", 1))
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def release(app: str) -> httpx.Response:
            return httpx.post(f"{live.url}/api/apps/{app}/releases", headers=headers, timeout=120)

        for name in ["web", *APPS]:  # each mirror exists, as after any first release; then one commit each
            assert release(name).status_code == 201
            commit(live.project.repo(name), {"new.txt": "1\n"}, "one more commit")
        with ThreadPoolExecutor(20) as pool:
            one_app = list(pool.map(release, ["web"] * 10))
            ten_apps = list(pool.map(release, APPS * 2))
        for answers in (one_app, ten_apps):
            assert all(r.is_success for r in answers), [(r.status_code, r.text) for r in answers]
        assert sorted(r.status_code for r in one_app) == [200] * 9 + [201]
        assert sorted(r.status_code for r in ten_apps) == [200] * 10 + [201] * 10
        releases: dict[str, set[tuple[int, str]]] = {}
        for answer in one_app + ten_apps:
            body = answer.json()
            releases.setdefault(answer.url.path.split("/")[3], set()).add((body["id"], body["sha"]))
        assert releases == {
            name: {(releases[name].copy().pop()[0], head(live.project.repo(name)))} for name in releases
        }
        assert sorted(releases) == sorted(["web", *APPS])
        assert "Traceback" not in live.output()
    finally:
        live.stop()
