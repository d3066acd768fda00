"""The backoff schedule: doubling from 1 s to a 5 min cap, shortened by jitter, then given up."""

from __future__ import annotations

from conveyor.config.retry import RetryPolicy


def test_the_delay_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n, rand=0.0) for n in range(1, 13)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_jitter_only_shortens_and_by_at_most_a_fifth() -> None:
    policy = RetryPolicy()
    for attempts in (1, 5, 12, 1000):
        full = policy.delay(attempts, rand=0.0)
        assert full * 0.8 <= policy.delay(attempts, rand=0.999) <= full
        assert all(full * 0.8 <= policy.delay(attempts) <= full for _ in range(50))


def test_a_huge_attempt_count_stays_at_the_cap() -> None:
    assert RetryPolicy().delay(10_000, rand=0.0) == 300


def test_gives_up_after_max_attempts_or_max_age() -> None:
    policy = RetryPolicy(max_attempts=30, max_age=24 * 3600)
    assert not policy.gives_up(29, age=60)
    assert policy.gives_up(30, age=60)
    assert policy.gives_up(1, age=24 * 3600)


def test_the_default_schedule_tries_for_about_two_hours() -> None:
    policy = RetryPolicy()
    total = sum(policy.delay(n, rand=0.0) for n in range(1, policy.max_attempts))
    assert 1.5 * 3600 < total < 2.5 * 3600
