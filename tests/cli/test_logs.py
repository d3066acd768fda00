"""``conveyor logs``: a deployment's steps, attempts and logs, from the newest deployment or one picked by
environment or id, once, as JSON, or followed until the deployment ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import BASE_CONFIG, Project, write_project
from tests.gitrepos import commit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_logs_show_why_a_local_app_exited_at_once(tmp_path: Path) -> None:
    config = BASE_CONFIG.replace(
        "web: {repo: ./repos/web, team: publishing, groups: [router]}",
        "web:\n"
        "    repo: ./repos/web\n"
        "    team: publishing\n"
        f"    vars: {{port: {free_port()}}}\n"
        f"    deploy: {{driver: local, start: [{sys.executable}, app.py]}}\n",
    )
    p = write_project(tmp_path, config)
    commit(p.repo("web"), {"app.py": "import sys\nsys.exit('DATABASE_URL is not set')\n"}, "web: needs a database")
    p.ok("release", "web")
    p.work()

    out = p.ok("logs", "web").output
    assert out.startswith(f"deployment #1 of web {p.head('web')[:7]} ({p.head('web')[:12]}) to integration")
    assert "step deploy\n" in out
    assert "  | " in out and "DATABASE_URL is not set" in out  # the app's own words, from its log
    assert "  attempt 1 by " in out
    assert "(exit code 1)" in out  # "exited at once" or "exited before becoming ready"
    assert out.rstrip().splitlines()[-1].startswith("deployment #1: failed: ")


def test_logs_pick_the_newest_deployment_by_environment_or_id(tmp_path: Path) -> None:
    p = write_project(tmp_path)
    p.ok("release", "web")
    p.work()
    newest = json.loads(p.ok("logs", "web", "--json").output)
    assert newest["deployment"]["environment"] == "production"
    assert [s["kind"] for s in newest["steps"]] == ["deploy", "check"]
    deploy = newest["steps"][0]
    assert deploy["state"] == "succeeded"
    assert [a["attempt"] for a in deploy["attempts"]] == [1]
    assert "with driver fake" in deploy["log"]

    staging = json.loads(p.ok("logs", "web", "--env", "staging", "--json").output)
    assert staging["deployment"]["environment"] == "staging"
    first = json.loads(p.ok("logs", "web", "--deployment", "1", "--json").output)
    assert first["deployment"]["environment"] == "integration"

    none = p.run("logs", "api", "--env", "production")
    assert (none.exit_code, none.stderr.strip()) == (1, "error: no deployment of api in production")
    other = p.run("logs", "api", "--deployment", str(newest["deployment"]["id"]))
    assert other.exit_code == 1 and "no deployment #" in other.stderr
    unknown = p.run("logs", "web", "--env", "prod")
    assert unknown.exit_code == 2 and "unknown environment 'prod'" in unknown.stderr
    both = p.run("logs", "web", "--follow", "--json")
    assert both.exit_code == 2


def test_logs_follow_prints_until_the_deployment_ends(project: Project) -> None:
    project.config.write_text(BASE_CONFIG.replace("duration: 0.1", "duration: 2"))
    project.ok("release", "web")
    queued = project.ok("deploy", "web", project.head("web")[:7], "--to", "staging")
    assert "queued" in queued.output
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    follower = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "logs", "web", "--env", "staging", "--follow", "-c", str(project.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        project.work()
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("deployment #2 of web ")
    assert lines.count("step deploy") == 1  # printed once, however many reads it took
    assert any("fake deployed" in line for line in lines)
    assert lines[-1].startswith("deployment #2: succeeded")


def test_ctrl_c_stops_following_quietly(project: Project) -> None:
    project.ok("release", "web")  # queued; no worker runs, so the deployment never ends
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    follower = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "logs", "web", "--follow", "-c", str(project.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().startswith("deployment #1 of web ")
        follower.send_signal(signal.SIGINT)
        _out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 130
    assert "Traceback" not in err
