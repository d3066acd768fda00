"""Invariant 4: text from the outside world reaches a deploy command only as data, never as shell code.

A version label and a SHA-like text full of shell syntax go through the ``command`` driver; the command
(Python, and a shell script that quotes its variables as it should) sees them verbatim in
``CONVEYOR_VERSION`` / ``CONVEYOR_SHA`` and nothing they mention is ever executed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conveyor.drivers.command import CommandDriver, CommandOptions
from tests.contract.driver_contract import make_request, new_context


def hostile(target: Path) -> str:
    return (
        f"1.0$(touch {target})`touch {target}`;touch {target};"
        f"' \"; touch {target} #\n"
        f"touch {target}\r\n$HOME ${{PATH}} | touch {target} && touch {target} > {target}"
    )


READERS = {
    "python": [
        sys.executable,
        "-c",
        "import os; open(os.environ['OUT'], 'w', newline='').write("
        "os.environ['CONVEYOR_VERSION'] + '\\0' + os.environ['CONVEYOR_SHA'])",
    ],
    "quoted shell script": ["/bin/sh", "-c", 'printf "%s\\0%s" "$CONVEYOR_VERSION" "$CONVEYOR_SHA" > "$OUT"'],
}


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_hostile_release_text_arrives_verbatim_and_runs_nothing(tmp_path: Path, reader: list[str]) -> None:
    target = tmp_path / "pwned"
    out = tmp_path / "seen.txt"
    version, sha = hostile(target), hostile(target).replace("1.0", "deadbeef", 1)
    options = CommandOptions(argv=reader, env={"OUT": str(out)}, cwd=str(tmp_path))
    request = make_request(options, tmp_path, version=version, sha=sha, vars={"branch": hostile(target)})
    ctx, log = new_context()
    result = CommandDriver().deploy(request, ctx)
    assert result.ok, (result.message, log.text)
    assert out.read_bytes().decode() == f"{version}\0{sha}"
    assert not target.exists()
    assert not (tmp_path / "touch").exists()


def test_text_that_cannot_be_an_environment_value_fails_cleanly(tmp_path: Path) -> None:
    options = CommandOptions(argv=["true"])
    request = make_request(options, tmp_path, version="1.0\0; touch x")
    result = CommandDriver().deploy(request, new_context()[0])
    assert not result.ok
    assert "could not start" in result.message
