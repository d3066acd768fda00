"""The step threads: each job on a thread of its own, idle threads reused, every thread named for the log."""

from __future__ import annotations

import threading

from conveyor.engine.step_threads import StepThreads


def test_jobs_that_wait_run_at_once_each_on_a_named_thread() -> None:
    threads = StepThreads(name="step")
    release = threading.Event()
    names: list[str] = []
    arrived = threading.Semaphore(0)
    lock = threading.Lock()

    def job() -> None:
        with lock:
            names.append(threading.current_thread().name)
        arrived.release()
        release.wait(30)

    for _ in range(50):
        threads.submit(job)
    for _ in range(50):  # all fifty wait at once: none waits for another's thread
        assert arrived.acquire(timeout=30)
    release.set()
    assert threads.started == 50
    assert len(set(names)) == 50 and all(n.startswith("step-") for n in names)


def test_a_thread_that_finished_its_step_takes_the_next() -> None:
    threads = StepThreads()
    for _ in range(5):
        done = threading.Event()
        threads.submit(done.set)
        assert done.wait(30)
        # its thread counts itself idle just after the job returns
        for _ in range(3000):
            if threads.idle:
                break
            threading.Event().wait(0.001)
    assert threads.started == 1


def test_wait_taken_returns_once_every_job_has_a_thread() -> None:
    threads = StepThreads()
    release = threading.Event()
    began: list[int] = []

    def job(n: int) -> None:
        began.append(n)
        release.wait(30)

    for n in range(40):
        threads.submit(lambda n=n: job(n))
    try:
        assert threads.wait_taken(30)
        assert threads.wait_taken(0)  # nothing left to take: at once
    finally:
        release.set()
    assert threads.started == 40
