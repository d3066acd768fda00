"""Engine benchmarks: print one ``name: value`` line per figure, then one JSON line with all of them.

Figures are ratios measured in one run (the machines are shared and noisy), never timed tests:

- ``makespan_ratio_independent``: 100 independent apps x 3 environments, fake 1 s deploys, no checks;
  measured makespan / lower bound (3 s). Both makespans are the median of 3 runs.
- ``makespan_ratio_groups``: 50 apps in 10 conflict groups of 5, otherwise the same; makespan / lower
  bound, where the bound is max(3 s, the busiest lock's serial work plus the environments after it:
  5 x 1 s + 2 x 1 s = 7 s).
- ``makespan_ratio_1000_apps``: 1,000 independent apps x 3 environments, fake 1 s deploys, no checks, at
  the conductor's default concurrency (what ``serve`` and ``worker`` run with), in a fresh process;
  measured makespan / lower bound (3 s), one run. ``peak_rss_mib_1000_apps`` is that process's peak
  resident set, and ``planner_pass_ms_1000_apps`` one planner pass for 1,000 apps with a new release each.
  The fake driver is a coroutine (as a driver that only waits on I/O can be): its deploys are tasks on
  the conductor's step loop. ``makespan_ratio_1000_apps_threads`` and ``peak_rss_mib_1000_apps_threads``
  are the same run with ``blocking: true``, a thread per running deploy, as the ``command`` and ``local``
  drivers (and any driver written with ``deploy``) run.
- ``machine_loop_10m_s`` / ``_end``: a Python loop of ten million additions, best of three, at the start
  and at the end of the run: how fast this machine's interpreter is, to compare the other figures across
  machines (the same commit's 1,000-app ratio was 1.43 where this took 0.8 s and about 2.1 where it took
  2.0 s). Shared machines change speed within minutes: two values far apart say the run straddled that.
- ``overhead_ms_per_step_sqlite`` / ``_postgres``: no-op fake deploys, 300 steps, engine wall time per step.
- ``planner_pass_ms`` / ``planner_pass_ms_100k_history``: one planner pass (read the snapshot, plan) for
  100 apps with a new release each, on SQLite, behind 300 finished deployments (each app live once in
  each of 3 environments) and behind 100,000; ``planner_pass_history_ratio`` is the second over the first
  (about 1: a long history costs a pass nothing).
- ``status_ms`` / ``status_ms_100k_history`` / ``status_history_ratio``: the same for ``conveyor status`` of
  all 100 apps (what ``GET /api/apps`` serves).
- ``metrics_ms`` / ``metrics_ms_100k_history`` / ``metrics_history_ratio``: the same for one ``/metrics``
  scrape.
- ``webhook_to_start_p99_ms``: from ``POST /api/apps/{app}/releases`` returning to the first deploy
  command starting, p99 over 200 releases, against a real ``conveyor serve`` on SQLite (negative when the
  deploy starts before the response reaches the client); ``webhook_request_to_start_p99_ms`` counts from
  the request being sent instead, so it includes resolving the ref and recording the release.
- ``github_intake_p99_ms``: signed ``push`` webhooks to ``POST /hooks/github`` of a real ``conveyor serve``
  on SQLite, one at a time, sending to the 2xx answer, p99 over 1,000 (the conductor in the same process
  works on them meanwhile); ``github_intake_per_s``: signed pushes accepted per second from 16 clients.
- ``push_to_deploy_start_p99_ms``: a ``push`` webhook then a green ``check_suite`` webhook for a new
  commit, from sending the push to the deploy command's first act, p99 over 100 commits; the repository
  is served by ``git daemon`` on loopback, so the worker's mirror fetch is a real fetch.
- ``process_start_ms_direct`` / ``_tethered`` / ``process_start_overhead_ms``: starting ``true`` with
  ``subprocess.run`` and through the step supervisor (which ties the command to the worker), medians of 50.
- ``scaleout_ratio_4_workers``: 200 deployments of 0.5 s fake (I/O-bound) deploys on PostgreSQL;
  throughput with 4 ``conveyor worker`` processes / with 1, at the same per-worker concurrency (8).
- ``error_intake_per_s``: gzip envelopes as sentry-sdk sends them (one error event each, 20 issues)
  accepted per second by one ``conveyor serve`` on SQLite, from 64 keep-alive connections of a client on
  the same machine (target: 2,000); ``error_intake_per_cpu_s`` is the same per second of the server's
  CPU time (what one core sustains, whatever else the machine runs); ``error_intake_p99_ms``: one
  envelope at a time, sent to answered (after its event is committed), p99 over 500.
- ``event_transactions_per_s_postgres``: 8 processes each committing 100 transactions that record 3
  events and nothing else, on PostgreSQL: transactions per second, the worst case for sealing events
  into the audit chain (each transaction holds the chain's head from sealing to commit).

PostgreSQL figures need ``CONVEYOR_BENCH_POSTGRES_URL`` (an admin URL such as
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; a scratch database is created and dropped),
and are reported as skipped otherwise. Run with ``make bench``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_latency import p99, release_to_start_ms
from engine import makespan, makespan_in_child, scaleout
from error_intake import error_intake
from event_writes import event_transactions_per_second
from github_intake import intake_latencies_ms, intake_per_second, push_to_deploy_start_ms
from history import metrics_ms, planner_pass_ms, status_ms
from scratch import postgres_scratch
from supervisor import start_costs

ADMIN_URL = os.environ.get("CONVEYOR_BENCH_POSTGRES_URL")


def loop_seconds() -> float:
    """Seconds for a Python loop of ten million additions, best of three."""
    best = float("inf")
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


def median_of(runs: int, measure: Callable[[], float]) -> float:
    """The median of a few runs: one slow run on a shared machine should not make the figure."""
    return statistics.median(measure() for _ in range(runs))


def main() -> int:
    figures: dict[str, float | str] = {}

    def figure(name: str, compute: Callable[[], float]) -> None:
        value = round(compute(), 3)
        figures[name] = value
        print(f"{name}: {value}", flush=True)

    figure("machine_loop_10m_s", loop_seconds)
    figure(
        "makespan_ratio_independent",
        lambda: median_of(3, lambda: makespan("sqlite", apps=100, groups=0, duration=1.0)) / 3.0,
    )
    figure(
        "makespan_ratio_groups",
        lambda: median_of(3, lambda: makespan("sqlite", apps=50, groups=10, duration=1.0)) / 7.0,
    )
    seconds, peak_mib = makespan_in_child(apps=1000, duration=1.0)
    figure("makespan_ratio_1000_apps", lambda: seconds / 3.0)
    figure("peak_rss_mib_1000_apps", lambda: peak_mib)
    seconds, peak_mib = makespan_in_child(apps=1000, duration=1.0, blocking=True)
    figure("makespan_ratio_1000_apps_threads", lambda: seconds / 3.0)
    figure("peak_rss_mib_1000_apps_threads", lambda: peak_mib)
    figure("planner_pass_ms_1000_apps", lambda: planner_pass_ms(history=300, apps=1000))
    figure("overhead_ms_per_step_sqlite", lambda: makespan("sqlite", apps=100, groups=0, duration=0.0) / 300 * 1000)
    young = planner_pass_ms(history=300)
    figure("planner_pass_ms", lambda: young)
    aged = planner_pass_ms(history=100_000)
    figure("planner_pass_ms_100k_history", lambda: aged)
    figure("planner_pass_history_ratio", lambda: aged / young)
    young = status_ms(history=300)
    figure("status_ms", lambda: young)
    aged = status_ms(history=100_000)
    figure("status_ms_100k_history", lambda: aged)
    figure("status_history_ratio", lambda: aged / young)
    young = metrics_ms(history=300)
    figure("metrics_ms", lambda: young)
    aged = metrics_ms(history=100_000)
    figure("metrics_ms_100k_history", lambda: aged)
    figure("metrics_history_ratio", lambda: aged / young)
    from_return, from_send = release_to_start_ms(200)
    figure("webhook_to_start_p99_ms", lambda: p99(from_return))
    figure("webhook_request_to_start_p99_ms", lambda: p99(from_send))
    figure("github_intake_p99_ms", lambda: p99(intake_latencies_ms(1000)))
    figure("github_intake_per_s", lambda: intake_per_second(2000, clients=16))
    figure("push_to_deploy_start_p99_ms", lambda: p99(push_to_deploy_start_ms(100)))
    per_second, per_cpu_second, intake_p99 = error_intake()
    figure("error_intake_per_s", lambda: per_second)
    figure("error_intake_per_cpu_s", lambda: per_cpu_second)
    figure("error_intake_p99_ms", lambda: intake_p99)
    for name, cost in start_costs().items():
        figure(name, lambda cost=cost: cost)
    if ADMIN_URL:
        with postgres_scratch(ADMIN_URL) as url:
            figure(
                "overhead_ms_per_step_postgres", lambda: makespan(url, apps=100, groups=0, duration=0.0) / 300 * 1000
            )
        with postgres_scratch(ADMIN_URL) as one, postgres_scratch(ADMIN_URL) as four:
            figure("scaleout_ratio_4_workers", lambda: scaleout(one, workers=1) / scaleout(four, workers=4))
        with postgres_scratch(ADMIN_URL) as url:
            figure("event_transactions_per_s_postgres", lambda: event_transactions_per_second(url))
    else:
        for name in ("overhead_ms_per_step_postgres", "scaleout_ratio_4_workers", "event_transactions_per_s_postgres"):
            figures[name] = "skipped: set CONVEYOR_BENCH_POSTGRES_URL"
            print(f"{name}: {figures[name]}")
    figure("machine_loop_10m_s_end", loop_seconds)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
