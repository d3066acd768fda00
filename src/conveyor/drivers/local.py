"""The ``local`` driver: run the app's repository at the release SHA as a process on this machine.

A development and demo driver. Per (app, environment) it keeps, in the request's ``state_dir``::

    checkouts/<sha>/           a git checkout of the release (``git clone --shared`` of conveyor's mirror)
    logs/<version>-<attempt>.log   the process's stdout and stderr (it outlives conveyor, so a file)
    current.json               the running process: pid, identity, sha, version, port, started_at, log

Deploy = check out the SHA, stop the previous process, start ``start`` (an argv list, no shell) in the
checkout with ``PORT`` set, and wait until ``http://127.0.0.1:PORT<ready_path>`` answers anything. The old
version holds the port, so there is a brief gap between stop and ready; a new version that never becomes
ready is stopped again and the deploy fails with its log tail, leaving nothing on the port.

Idempotent: when ``current.json`` names a live process of this SHA on this port that answers, deploy
returns at once ("already running"). A recorded pid is only signalled if its start time still matches the
recorded identity, so a pid recycled by the system is never killed. Processes start in their own session
and survive conveyor's exit; :func:`stop_all` ends every one under a folder (the demo's Ctrl-C).
"""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, cast

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.drivers.base import DeployRequest, DeployResult, Driver
from conveyor.drivers.process import detached_exit_code, process_identity, spawn_detached, stop_group
from conveyor.steps import StepContext
from conveyor.supervisor import describe_start_error, minimal_environ, run_process

RECORD_NAME = "current.json"
GIT_TIMEOUT = 300.0
DEFAULT_STOP_TIMEOUT = 10.0
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 object names, in full


class LocalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Annotated[list[str], Field(min_length=1)]
    ready_timeout: Annotated[float, Field(gt=0)] = 30.0
    ready_path: Annotated[str, Field(pattern=r"^/")] = "/"
    stop_timeout: Annotated[float, Field(ge=0)] = DEFAULT_STOP_TIMEOUT
    env: dict[str, str] = Field(default_factory=dict)


class LocalVars(BaseModel):
    """The vars the local driver reads in each environment: the port the app listens on."""

    port: Annotated[int, Field(ge=1, le=65535)]


class ProcessRecord(BaseModel):
    """What ``current.json`` holds about the process serving an (app, environment)."""

    pid: int
    identity: str
    sha: str
    version: str
    port: int
    started_at: str
    log: str

    def summary(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port, "version": self.version, "sha": self.sha, "log": self.log}


class _DeployFailed(Exception):
    """Internal: ends a deploy early; :meth:`LocalDriver.deploy` turns it into a failed result."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message, self.details = message, details
        self.previous_stopped = False  # raised after the previous process was stopped: nothing runs


class LocalDriver(Driver):
    name = "local"
    Options = LocalOptions
    Vars = LocalVars

    def deploy(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        opts = cast(LocalOptions, request.options)
        try:
            return _deploy(request, opts, ctx)
        except _DeployFailed as failure:
            ctx.log(failure.message)
            return DeployResult(
                ok=False, message=failure.message, details=failure.details, previous_stopped=failure.previous_stopped
            )

    def teardown(self, app: str, environment: str, state_dir: Path, ctx: StepContext) -> DeployResult:
        record = read_record(state_dir)
        if record is None:
            return DeployResult(ok=True, message="nothing running")
        _stop(record, DEFAULT_STOP_TIMEOUT, ctx)
        clear_record(state_dir)
        return DeployResult(ok=True, message=f"stopped {record.version}", details=record.summary())


def stop_all(state_root: Path) -> int:
    """Stop every ``local`` process recorded anywhere under ``state_root``; return how many were live."""
    if not state_root.is_dir():
        return 0
    stopped = 0
    for path in sorted(state_root.rglob(RECORD_NAME)):
        if "checkouts" in path.relative_to(state_root).parts:
            continue  # an app's own file inside a checkout, not ours
        record = read_record(path.parent)
        if record is None:
            continue
        if stop_group(record.pid, record.identity, DEFAULT_STOP_TIMEOUT) != "not running":
            stopped += 1
        clear_record(path.parent)
    return stopped


def _deploy(request: DeployRequest, opts: LocalOptions, ctx: StepContext) -> DeployResult:
    port = _port_of(request)
    _require_sha(request.sha)
    current = read_record(request.state_dir)
    if current is not None and _already_serving(current, request.sha, port, opts.ready_path):
        ctx.log(f"{current.version} already running on port {port} (pid {current.pid})")
        return DeployResult(ok=True, message=f"already running {current.version}", details=current.summary())
    checkout = _ensure_checkout(request, ctx)
    if current is not None:
        _stop(current, opts.stop_timeout, ctx)
        clear_record(request.state_dir)
    try:
        _wait_port_free(port, max(opts.stop_timeout, 2.0), ctx)
        record = _start(request, opts, port, checkout, ctx)
        _wait_ready(record, opts, ctx, request.state_dir)
    except _DeployFailed as failure:
        failure.previous_stopped = current is not None
        raise
    message = f"{request.version} running on port {port} (pid {record.pid})"
    ctx.log(message)
    return DeployResult(ok=True, message=message, details=record.summary())


def _port_of(request: DeployRequest) -> int:
    raw = next((value for key, value in request.vars.items() if key.lower() == "port"), None)
    if raw is None:
        raise _DeployFailed("the local driver needs a 'port' var for this environment")
    try:
        port = int(raw)
    except ValueError:
        raise _DeployFailed(f"the 'port' var is not a number: {raw!r}") from None
    if not 1 <= port <= 65535:
        raise _DeployFailed(f"the 'port' var is out of range: {port}")
    return port


# --- the record -------------------------------------------------------------------------------------


def read_record(state_dir: Path) -> ProcessRecord | None:
    try:
        return ProcessRecord.model_validate_json((state_dir / RECORD_NAME).read_bytes())
    except (OSError, ValidationError):
        return None


def write_record(state_dir: Path, record: ProcessRecord) -> None:
    """Replace ``current.json`` atomically: readers see the old record or the new one, never half."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=state_dir, prefix=".current-", delete=False) as tmp:
        tmp.write(record.model_dump_json(indent=2))
    Path(tmp.name).replace(state_dir / RECORD_NAME)


def clear_record(state_dir: Path) -> None:
    (state_dir / RECORD_NAME).unlink(missing_ok=True)


# --- checkout ---------------------------------------------------------------------------------------


def _ensure_checkout(request: DeployRequest, ctx: StepContext) -> Path:
    """``state_dir/checkouts/<sha>`` at ``sha``, reused when already there; built aside, then renamed.

    The SHA must be a full hexadecimal object name, so it can never be read as a git option.
    """
    _require_sha(request.sha)
    root = request.state_dir / "checkouts"
    target = root / request.sha
    if _head_of(target) == request.sha:
        ctx.log(f"reusing checkout {target}")
        return target
    shutil.rmtree(target, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{request.sha[:12]}-", dir=root))
    try:
        _git(["clone", "--quiet", "--shared", "--no-checkout", "--", request.repo, str(staging)], ctx)
        _git(["-C", str(staging), "checkout", "--quiet", "--detach", request.sha], ctx)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _require_sha(sha: str) -> None:
    if not _SHA.fullmatch(sha):
        raise _DeployFailed(f"not a full commit SHA: {sha!r}")


def _head_of(checkout: Path) -> str | None:
    if not (checkout / ".git").exists():  # without it git would look at enclosing folders
        return None
    output: list[str] = []
    argv = ["git", "-C", str(checkout), "rev-parse", "--verify", "--quiet", "HEAD"]
    outcome = run_process(argv, env=_git_environ(), cwd=None, timeout=GIT_TIMEOUT, ctx=StepContext(log=output.append))
    return output[-1].strip() if outcome.ok and output else None


def _git(args: list[str], ctx: StepContext) -> None:
    outcome = run_process(["git", *args], env=_git_environ(), cwd=None, timeout=GIT_TIMEOUT, ctx=ctx)
    if outcome.cancelled:
        raise _DeployFailed("cancelled")
    if not outcome.ok:
        reason = outcome.error or ("timed out" if outcome.timed_out else f"exit code {outcome.exit_code}")
        raise _DeployFailed(f"git {args[0] if args[0] != '-C' else args[2]} failed: {reason}")


def _git_environ() -> dict[str, str]:
    return minimal_environ() | {"GIT_TERMINAL_PROMPT": "0"}


# --- processes --------------------------------------------------------------------------------------


def _start(request: DeployRequest, opts: LocalOptions, port: int, checkout: Path, ctx: StepContext) -> ProcessRecord:
    if ctx.cancelled.is_set():
        raise _DeployFailed("cancelled")
    log_path = request.state_dir / "logs" / f"{_file_safe(request.version)}-{request.attempt}.log"
    env = minimal_environ() | request.environ() | {"PORT": str(port)} | opts.env
    ctx.log(f"starting {request.version} on port {port}: {shlex.join(opts.start)}")
    try:
        pid = spawn_detached(opts.start, env=env, cwd=checkout, log_path=log_path)
    except (OSError, ValueError) as exc:
        raise _DeployFailed(describe_start_error(opts.start, checkout, exc)) from None
    identity = process_identity(pid)
    if identity is None:
        _fail_with_log(f"{request.version} exited at once{_exit_note(pid)}", log_path, ctx)
    record = ProcessRecord(
        pid=pid,
        identity=identity,
        sha=request.sha,
        version=request.version,
        port=port,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        log=str(log_path),
    )
    write_record(request.state_dir, record)  # before waiting: a crash now still knows what to stop
    return record


def _wait_ready(record: ProcessRecord, opts: LocalOptions, ctx: StepContext, state_dir: Path) -> None:
    """Return once the new process answers HTTP; otherwise stop it and fail with its log."""
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        problem = _readiness_problem(client, record, opts, ctx)
    if problem is None:
        return
    _stop(record, opts.stop_timeout, ctx)
    clear_record(state_dir)
    _fail_with_log(problem, Path(record.log), ctx)


def _readiness_problem(client: httpx.Client, record: ProcessRecord, opts: LocalOptions, ctx: StepContext) -> str | None:
    url = f"http://127.0.0.1:{record.port}{opts.ready_path}"
    deadline = time.monotonic() + opts.ready_timeout
    while True:
        if process_identity(record.pid) != record.identity:
            return f"{record.version} exited before becoming ready{_exit_note(record.pid)}"
        if _answers(client, url):
            return None
        if ctx.cancelled.is_set():
            return "cancelled"
        if time.monotonic() >= deadline:
            return f"{record.version} not ready after {opts.ready_timeout:g}s ({url})"
        ctx.wait(0.1)


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        client.get(url)
    except httpx.HTTPError:
        return False
    return True


def _already_serving(record: ProcessRecord, sha: str, port: int, ready_path: str) -> bool:
    if record.sha != sha or record.port != port or process_identity(record.pid) != record.identity:
        return False
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        return _answers(client, f"http://127.0.0.1:{port}{ready_path}")


def _stop(record: ProcessRecord, timeout: float, ctx: StepContext) -> None:
    outcome = stop_group(record.pid, record.identity, timeout)
    ctx.log(f"{record.version} (pid {record.pid}): {outcome}")


def _wait_port_free(port: int, timeout: float, ctx: StepContext) -> None:
    deadline = time.monotonic() + timeout
    while not _port_free(port):
        if time.monotonic() >= deadline:
            raise _DeployFailed(f"port {port} is in use by a process conveyor did not start")
        if ctx.wait(0.1):
            raise _DeployFailed("cancelled")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _exit_note(pid: int) -> str:
    code = detached_exit_code(pid)
    return "" if code is None else f" (exit code {code})"


# --- logs -------------------------------------------------------------------------------------------


def _fail_with_log(message: str, log_path: Path, ctx: StepContext) -> NoReturn:
    excerpt = log_excerpt(log_path)
    ctx.log(f"{message}; log {log_path}:")
    ctx.log_lines(f"  | {line}" for line in excerpt)
    raise _DeployFailed(message, log=str(log_path), log_tail=excerpt)


def log_excerpt(path: Path, head: int = 10, tail: int = 30, limit: int = 256 * 1024) -> list[str]:
    """The first ``head`` and last ``tail`` lines of a log, reading at most ``limit`` bytes of each end."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, 2)
            log.seek(0)
            if size <= limit:
                lines = log.read().decode("utf-8", "replace").splitlines()
                return lines if len(lines) <= head + tail else [*lines[:head], "…", *lines[-tail:]]
            first = log.read(limit // 8).decode("utf-8", "replace").splitlines()[:head]
            log.seek(size - limit)
            last = log.read().decode("utf-8", "replace").splitlines()[1:][-tail:]
            return [*first, "…", *last]
    except OSError:
        return []


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".")[:80] or "release"
