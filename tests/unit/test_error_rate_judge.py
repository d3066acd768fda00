"""The error-rate judge, table by table, and its binomial arithmetic against published values."""

from __future__ import annotations

import math

import pytest

from conveyor.domain.error_rate import (
    ErrorRateLimits,
    WindowCounts,
    binomial_pmf,
    binomial_upper_tail,
    judge_error_rate,
    rate_ratio_p_value,
)

HOUR, FIVE_MINUTES = 3600.0, 300.0


def test_scipy_binomtest_documented_example() -> None:
    """scipy.stats.binomtest's documentation: a car maker claims no more than 10% of its cars are unsafe;
    3 of 15 inspected are. ``binomtest(3, n=15, p=0.1, alternative='greater')`` gives
    ``pvalue=0.18406106910639114``."""
    assert binomial_upper_tail(3, 15, 0.1) == pytest.approx(0.18406106910639114, rel=1e-12)


def test_wikipedia_binomial_test_dice_example() -> None:
    """Wikipedia, "Binomial test", example: a die rolled 235 times shows 51 sixes; under a fair die
    (p = 1/6) the one-tailed probability of 51 or more is 0.02654."""
    assert binomial_upper_tail(51, 235, 1 / 6) == pytest.approx(0.02654, abs=5e-6)


def test_r_poisson_test_two_sample_example() -> None:
    """R's ``poisson.test`` documentation (stats package), from the eba1977 data: comparing Fredericia
    with the other three cities, ages 55-59, ``poisson.test(c(11, 6+8+7), c(800, 1083+1050+878))``
    prints "count1 = 11, expected count1 = 6.7174, p-value = 0.07967" and "rate ratio 1.971488". It is
    the same conditional binomial test (two-sided there, by R's rule: the sum of the probabilities of
    the outcomes no more likely than the observed one), so our pmf reproduces both numbers."""
    n, p = 11 + 21, 800 / (800 + 3011)
    assert n * p == pytest.approx(6.7174, abs=1e-4)
    observed = binomial_pmf(11, n, p)
    two_sided = sum(binomial_pmf(k, n, p) for k in range(n + 1) if binomial_pmf(k, n, p) <= observed * (1 + 1e-7))
    assert two_sided == pytest.approx(0.07967, abs=5e-6)
    counts = WindowCounts(before=21, before_seconds=3011, after=11, after_seconds=800)
    assert counts.ratio == pytest.approx(1.971488, abs=1e-6)
    # one-sided, H0 ratio <= 1: P(X >= 11) for X ~ Bin(32, p), half-ish of the two-sided value
    assert rate_ratio_p_value(counts, 1.0) == pytest.approx(binomial_upper_tail(11, n, p))
    assert 0.03 < rate_ratio_p_value(counts, 1.0) < 0.07967


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [(0, 10, 0.3), (1, 10, 0.3), (3, 10, 0.3), (7, 10, 0.3), (10, 10, 0.3), (11, 10, 0.3), (5, 40, 0.01)],
)
def test_upper_tail_equals_the_plain_sum(k: int, n: int, p: float) -> None:
    plain = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
    assert binomial_upper_tail(k, n, p) == pytest.approx(plain, rel=1e-12, abs=1e-300)


def test_upper_tail_edges_and_large_n() -> None:
    assert binomial_upper_tail(0, 5, 0.5) == 1.0
    assert binomial_upper_tail(6, 5, 0.5) == 0.0
    assert binomial_upper_tail(1, 5, 0.0) == 0.0
    assert binomial_upper_tail(5, 5, 1.0) == 1.0
    assert binomial_upper_tail(1, 100_000, 1e-5) == pytest.approx(1 - (1 - 1e-5) ** 100_000, rel=1e-9)
    # a million events: summed from the tail outward, not over every k
    assert binomial_upper_tail(500_000, 1_000_000, 0.5) == pytest.approx(
        0.5 + binomial_pmf(500_000, 1_000_000, 0.5) / 2
    )
    with pytest.raises(ValueError):
        binomial_upper_tail(1, 2, 1.5)


def counts(after: int, before: int, after_seconds: float = FIVE_MINUTES, before_seconds: float = HOUR) -> WindowCounts:
    return WindowCounts(before=before, before_seconds=before_seconds, after=after, after_seconds=after_seconds)


DEFAULT = ErrorRateLimits()  # max_ratio 2, min_events 10, alpha 0.01

# (id, counts, limits, expected phase)
ROWS = [
    ("quiet app: nothing before or after", counts(0, 0), DEFAULT, "inconclusive"),
    ("a few errors: too few to tell", counts(2, 5), DEFAULT, "inconclusive"),
    ("zero baseline, a few errors after: too few", counts(9, 0), DEFAULT, "inconclusive"),
    ("zero baseline, many errors after: fails, never holds forever", counts(10, 0), DEFAULT, "fail"),
    ("zero baseline, many errors after, long window: not significant", counts(10, 0, HOUR), DEFAULT, "pass"),
    ("steady rate 10/h: 1 in 5 minutes", counts(1, 10), DEFAULT, "pass"),
    ("10/h baseline: 6 in 5 minutes is not yet significant", counts(6, 10), DEFAULT, "pass"),
    ("10/h baseline: 7 in 5 minutes fails", counts(7, 10), DEFAULT, "fail"),
    ("60/h baseline: 19 in 5 minutes passes", counts(19, 60), DEFAULT, "pass"),
    ("60/h baseline: 20 in 5 minutes fails", counts(20, 60), DEFAULT, "fail"),
    ("fewer errors after than before: passes", counts(0, 120), DEFAULT, "pass"),
    ("doubled rate exactly: passes", counts(10, 60), DEFAULT, "pass"),
    ("max_ratio 1 is stricter", counts(13, 60), ErrorRateLimits(max_ratio=1.0), "fail"),
    ("alpha 0.001 is more lenient", counts(7, 10), ErrorRateLimits(alpha=0.001), "pass"),
    ("min_events 0 judges anything", counts(3, 0), ErrorRateLimits(min_events=0), "fail"),
    ("nothing after observed yet", counts(5, 10, after_seconds=0), DEFAULT, "inconclusive"),
    ("no baseline window", counts(50, 0, before_seconds=0), DEFAULT, "inconclusive"),
]


@pytest.mark.parametrize(("seen", "limits", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_judge_table(seen: WindowCounts, limits: ErrorRateLimits, expected: str) -> None:
    verdict = judge_error_rate(seen, limits)
    assert verdict.phase == expected, verdict.reason


def test_reason_carries_the_numbers() -> None:
    verdict = judge_error_rate(counts(7, 10), DEFAULT)
    assert verdict.phase == "fail"
    assert verdict.p_value is not None and verdict.p_value < 0.01
    assert "7 errors in 5m after the deploy, 10 in 1h before, ratio 8.40" in verdict.reason
    assert f"p = {verdict.p_value:.3g}" in verdict.reason
    too_few = judge_error_rate(counts(2, 5), DEFAULT)
    assert too_few.too_few and too_few.p_value is None
    assert "too few errors to tell (7 < min_events 10)" in too_few.reason
    assert "ratio ∞" in judge_error_rate(counts(12, 0), DEFAULT).reason


def test_zero_baseline_p_value_is_the_power_of_p() -> None:
    """With nothing before, every error fell after: P(X >= n | n) = p^n, p = 2·300/(2·300 + 3600) = 1/7."""
    assert rate_ratio_p_value(counts(12, 0), 2.0) == pytest.approx((1 / 7) ** 12)


def test_limits_are_checked() -> None:
    for bad in ({"max_ratio": 0}, {"alpha": 1.0}, {"alpha": 0}, {"min_events": -1}):
        with pytest.raises(ValueError):
            ErrorRateLimits(**bad)  # type: ignore[arg-type]
