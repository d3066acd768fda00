"""The judge of an error rate after a deploy: a count test, not a threshold on raw numbers.

Errors are counted in two windows of one app in one environment:

- **before**: ``before`` errors over ``before_seconds`` of the previous release, ending when the deploy
  started (the baseline);
- **after**: ``after`` errors over ``after_seconds`` of the new release, starting when the deploy finished.

The question is whether the new release's error rate is more than ``max_ratio`` times the old one. Error
counts in a window are modelled as Poisson, and the two rates are compared with the conditional (exact)
test of Przyborowski and Wilenski (1940): given ``n = before + after`` errors in all, the number that
fell in the after window is Binomial(n, p) with

    p = max_ratio * after_seconds / (max_ratio * after_seconds + before_seconds)

when the after rate is exactly ``max_ratio`` times the before rate. The one-sided p-value is
P(X >= after); below ``alpha`` the rate is significantly above ``max_ratio`` times the baseline and the
verdict is ``fail``. The test is exact for any ``n`` (no normal approximation), needs no estimate of the
baseline rate, and a baseline of zero is no special case: 0 before and 12 after in a 5-minute window
against an hour gives p = (1/7)^12, a clear ``fail``.

Too few errors to tell (``n < min_events``) is ``inconclusive``, whatever the split: a handful of errors
is as likely one user retrying as a broken release, and the test has no power to say "fine" there. So a
quiet app is never passed by default; ``inconclusive_limit`` and ``on_too_few`` (in the check) decide
what a quiet app does. A window with no time in it (nothing observed yet, or no previous release) is
``inconclusive`` too.

Pure: counts and durations in, a verdict out. The binomial tail is summed in log space from the
observed count outward, stopping when the terms no longer change the sum, so it is exact to double
precision and costs O(sqrt(n)) terms rather than O(n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ErrorRateLimits",
    "ErrorRateVerdict",
    "WindowCounts",
    "binomial_pmf",
    "binomial_upper_tail",
    "judge_error_rate",
    "rate_ratio_p_value",
]

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class WindowCounts:
    """Errors counted before and after a deploy, each over its window's length in seconds."""

    before: int
    before_seconds: float
    after: int
    after_seconds: float

    @property
    def total(self) -> int:
        return self.before + self.after

    @property
    def ratio(self) -> float | None:
        """The observed after/before rate ratio (``inf`` on a zero baseline, None when nothing was seen)."""
        if self.after_seconds <= 0 or self.before_seconds <= 0 or self.total == 0:
            return None
        if self.before == 0:
            return math.inf
        return (self.after / self.after_seconds) / (self.before / self.before_seconds)


@dataclass(frozen=True)
class ErrorRateLimits:
    max_ratio: float = 2.0  # the after rate may be up to this many times the before rate
    min_events: int = 10  # fewer errors in both windows together: too few to tell
    alpha: float = 0.01  # significance level: the chance of failing a release whose rate is fine

    def __post_init__(self) -> None:
        if not self.max_ratio > 0:
            raise ValueError(f"max_ratio must be > 0, got {self.max_ratio}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.min_events < 0:
            raise ValueError(f"min_events must be >= 0, got {self.min_events}")


@dataclass(frozen=True)
class ErrorRateVerdict:
    phase: Verdict
    reason: str  # one line a person can act on, with the numbers
    p_value: float | None = None  # None when the test was not run
    too_few: bool = False  # inconclusive because fewer than min_events errors were seen


def judge_error_rate(counts: WindowCounts, limits: ErrorRateLimits) -> ErrorRateVerdict:
    """Pass, fail or inconclusive for ``counts`` under ``limits`` (see the module docstring)."""
    seen = _describe(counts)
    if counts.after_seconds <= 0:
        return ErrorRateVerdict("inconclusive", f"nothing observed after the deploy yet; {seen}")
    if counts.before_seconds <= 0:
        return ErrorRateVerdict("inconclusive", f"no baseline window before the deploy; {seen}")
    if counts.total < limits.min_events:
        return ErrorRateVerdict(
            "inconclusive",
            f"too few errors to tell ({counts.total} < min_events {limits.min_events}); {seen}",
            too_few=True,
        )
    p = rate_ratio_p_value(counts, limits.max_ratio)
    test = f"p = {p:.3g} for rate ≤ {limits.max_ratio:g}× baseline, alpha {limits.alpha:g}"
    if p < limits.alpha:
        return ErrorRateVerdict(
            "fail", f"error rate significantly above {limits.max_ratio:g}× baseline: {seen}; {test}", p
        )
    return ErrorRateVerdict("pass", f"error rate within {limits.max_ratio:g}× baseline: {seen}; {test}", p)


def rate_ratio_p_value(counts: WindowCounts, max_ratio: float) -> float:
    """One-sided p-value of H0 "after rate ≤ max_ratio × before rate" (conditional binomial test)."""
    weighted = max_ratio * counts.after_seconds
    p = weighted / (weighted + counts.before_seconds)
    return binomial_upper_tail(counts.after, counts.total, p)


def binomial_pmf(k: int, n: int, p: float) -> float:
    """P(X = k) for X ~ Binomial(n, p)."""
    return math.exp(_log_pmf(k, n, p)) if 0 <= k <= n else 0.0


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact to double precision."""
    if not 0 <= p <= 1:
        raise ValueError(f"p must be between 0 and 1, got {p}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p == 0:
        return 0.0
    if p == 1:
        return 1.0
    mode = math.floor((n + 1) * p)
    if k > mode:  # the terms fall from k upwards: sum them until they stop counting
        return min(1.0, _sum_from(k, n, p, step=1))
    # k at or below the mode: the tail is large; 1 - P(X <= k-1), whose terms fall from k-1 downwards
    return max(0.0, 1.0 - _sum_from(k - 1, n, p, step=-1))


def _sum_from(start: int, n: int, p: float, step: int) -> float:
    log_p, log_q = math.log(p), math.log1p(-p)
    first = _log_pmf(start, n, p, log_p, log_q)
    total, k = 0.0, start
    while 0 <= k <= n:
        term = math.exp(_log_pmf(k, n, p, log_p, log_q) - first)
        total += term
        if term < total * 1e-17:
            break
        k += step
    return total * math.exp(first)


def _log_pmf(k: int, n: int, p: float, log_p: float | None = None, log_q: float | None = None) -> float:
    if p == 0:
        return 0.0 if k == 0 else -math.inf
    if p == 1:
        return 0.0 if k == n else -math.inf
    log_p = math.log(p) if log_p is None else log_p
    log_q = math.log1p(-p) if log_q is None else log_q
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return log_choose + k * log_p + (n - k) * log_q


def _describe(counts: WindowCounts) -> str:
    ratio = counts.ratio
    shown = "" if ratio is None else (", ratio ∞" if math.isinf(ratio) else f", ratio {ratio:.2f}")
    return (
        f"{counts.after} errors in {_span(counts.after_seconds)} after the deploy, "
        f"{counts.before} in {_span(counts.before_seconds)} before{shown}"
    )


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60:
        minutes = seconds / 60
        return f"{minutes:.0f}m" if minutes == int(minutes) else f"{minutes:.1f}m"
    return f"{seconds:.0f}s"
