"""The cost of starting a step's command through the tether (see src/conveyor/tether.py).

``process_start_ms_direct``: median wall time of ``subprocess.run(["true"])``; ``process_start_ms_tethered``:
median wall time of :func:`conveyor.supervisor.run_process` running ``true`` (the tether's interpreter
start, the start report on the control socket, the exit report); ``process_start_overhead_ms`` is their
difference: what every command a driver or check runs pays for dying with its worker. Run alone with
``python benchmarks/supervisor.py`` or as part of ``make bench``.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable

from conveyor.steps import StepContext
from conveyor.supervisor import minimal_environ, run_process

RUNS = 50


def median_ms(run: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def start_costs() -> dict[str, float]:
    env = minimal_environ()
    direct = median_ms(lambda: subprocess.run(["true"], env=env, check=True))
    tethered = median_ms(lambda: run_process(["true"], env=env, cwd=None, timeout=30, ctx=StepContext()))
    return {
        "process_start_ms_direct": direct,
        "process_start_ms_tethered": tethered,
        "process_start_overhead_ms": tethered - direct,
    }


if __name__ == "__main__":
    for name, value in start_costs().items():
        print(f"{name}: {value:.1f}")
