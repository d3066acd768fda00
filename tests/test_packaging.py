"""Packaging and chores: `make demo` installs only what conveyor needs to run, the development tools come
with `make test` and `make lint`, and building the package raises no metadata warning."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def planned(target: str, venv: Path) -> str:
    """What ``make TARGET`` would run for a fresh virtual environment at ``venv`` (``make -n``)."""
    result = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_installs_the_runtime_only(tmp_path: Path) -> None:
    demo = planned("demo", tmp_path / "venv")
    assert "pip install --quiet -e .\n" in demo
    assert "[dev]" not in demo
    for target in ("test", "lint", "bench"):
        assert "pip install --quiet -e '.[dev]'" in planned(target, tmp_path / "venv"), target


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_package_builds_without_a_license_warning(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(tmp_path / "dist"), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "license" not in (built.stdout + built.stderr).lower(), built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("conveyor-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: MIT" in archive.read(metadata).decode().splitlines()
