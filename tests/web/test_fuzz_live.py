"""``schemathesis run`` with every check against a real ``conveyor serve``, as an outside tester would run it:
every status an endpoint answers is described, and no schema-valid request is rejected (an unknown
environment is already invalid in the description: its enum is the configured environments; a ref the
repository lacks is a ``404``).

Bounded: ``--max-examples`` per operation and one worker keep the run to about 600 requests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import AUTH, TOKEN
from tests.web.test_serve import Live, start

MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start(tmp_path_factory.mktemp("fuzz-live"))
    # something in the store to read: both apps released (the server's own conductor works them)
    for app in ("web", "api"):
        assert httpx.post(f"{server.url}/api/apps/{app}/releases", headers=AUTH).status_code == 201
    yield server
    if server.process.poll() is None:
        server.stop()


def test_schemathesis_run_with_all_checks_passes(live: Live, tmp_path: Path) -> None:
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert schemathesis, "schemathesis is not installed next to the interpreter (pip install -e '.[dev]')"
    run = subprocess.run(
        [
            schemathesis,
            "run",
            f"{live.url}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "1",
            "--workers",
            "1",
            "--no-color",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=540,
    )
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested and int(tested.group(1)) >= 12, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert generated and int(generated.group(1)) >= 300 and generated.group(1) == generated.group(2), summary
    assert "Traceback" not in live.output()
