"""Chores run on their own thread, survive their own failures and wake the conductor when they change something."""

from __future__ import annotations

import threading

from conveyor.engine.chores import Chore, Chores


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_chore_runs_at_its_turn_and_not_before() -> None:
    clock = FakeClock()
    runs: list[float] = []
    chore = Chore("tick", every=10.0, run=lambda: runs.append(clock.now) is None and False, first_after=5.0)
    chores = Chores([chore], wake=lambda: None, clock=clock)
    chore.next_at = clock.now + chore.first_after
    assert chores.run_due() is False and runs == []
    clock.now += 5.0
    chores.run_due()
    clock.now += 9.0
    chores.run_due()
    clock.now += 1.0
    chores.run_due()
    assert runs == [105.0, 115.0]


def test_a_failing_chore_is_counted_and_the_others_still_run() -> None:
    clock = FakeClock()
    ran: list[str] = []

    def broken() -> bool:
        raise RuntimeError("the remote is down")

    chores = Chores(
        [
            Chore("broken", every=1.0, run=broken),
            Chore("fine", every=1.0, run=lambda: bool(ran.append("fine")) or True),
        ],
        wake=lambda: None,
        clock=clock,
    )
    assert chores.run_due() is True
    assert chores.failures["broken"] == 1 and ran == ["fine"]


def test_the_thread_wakes_the_conductor_when_a_chore_changed_something() -> None:
    woken = threading.Event()
    done = threading.Event()

    def once() -> bool:
        if done.is_set():
            return False
        done.set()
        return True

    chores = Chores([Chore("release", every=0.01, run=once)], wake=woken.set)
    chores.start()
    try:
        assert woken.wait(5.0)
    finally:
        chores.stop()


def test_poke_runs_every_chore_at_once() -> None:
    ran = threading.Event()
    calls: list[int] = []

    def chore() -> bool:
        calls.append(1)
        if len(calls) > 1:
            ran.set()
        return False

    chores = Chores([Chore("slow", every=3600.0, run=chore)], wake=lambda: None)
    chores.start()
    try:
        chores.poke()
        assert ran.wait(5.0)
    finally:
        chores.stop()


def test_stopping_closes_each_chore_within_the_time_left() -> None:
    closed: list[float] = []
    failing = Chore("failing", every=1.0, run=lambda: False, close=lambda left: 1 / 0)  # logged, not raised
    chores = Chores([failing, Chore("polls", every=1.0, run=lambda: False, close=closed.append)], wake=lambda: None)
    chores.stop(timeout=5.0)
    assert len(closed) == 1 and 0.0 < closed[0] <= 5.0


def test_run_soon_asked_while_the_chore_runs_is_not_lost() -> None:
    """New work arriving while the chore works on the previous one: it runs again at once, not a turn later."""
    clock = FakeClock()
    runs: list[float] = []
    chores: Chores

    def intake() -> bool:
        runs.append(clock.now)
        if len(runs) == 1:
            chores.run_soon("intake")  # a webhook recorded meanwhile
        return False

    chores = Chores(
        [Chore("intake", every=30.0, run=intake), Chore("other", every=30.0, run=lambda: False)],
        wake=lambda: None,
        clock=clock,
    )
    chores.run_due()
    assert runs == [100.0]
    chores.run_due()  # without the clock moving
    assert runs == [100.0, 100.0]
    chores.run_due()
    assert runs == [100.0, 100.0]  # and then at its own pace again


def test_a_burst_of_run_soon_is_worked_in_batches_min_gap_apart() -> None:
    clock = FakeClock()
    runs: list[float] = []
    chore = Chore("intake", every=30.0, run=lambda: bool(runs.append(clock.now)), min_gap=0.05)
    chores = Chores([chore], wake=lambda: None, clock=clock)
    chores.run_soon("intake")
    chores.run_due()
    for _ in range(10):  # ten deliveries within 10 ms
        chores.run_soon("intake")
        clock.now += 0.001
        chores.run_due()
    assert runs == [100.0]
    clock.now = 100.05
    chores.run_due()
    assert runs == [100.0, 100.05]
