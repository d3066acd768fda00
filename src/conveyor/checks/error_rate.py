"""The ``error_rate`` check: did the release just deployed raise the app's error rate?

Each measurement counts the app's errors in the environment in two windows and hands the counts to the
pure judge (:func:`conveyor.domain.error_rate.judge_error_rate`, an exact count test):

- **after**: the last ``window`` seconds, never reaching back past the moment the deploy finished
  (``deployed_at``), counting errors of the new release;
- **before** (the baseline): ``baseline`` seconds ending when the deploy started, counting errors of
  the previous release (``previous_version``), and never reaching back past the moment that release's
  own deploy finished, so its exposure is the time it really ran.

Phases: ``fail`` when the after rate is significantly above ``max_ratio`` times the baseline;
``inconclusive`` when there are too few errors to tell, no previous release to compare with, or the
after window has not filled yet (a release is never passed on part of its window; it may fail on one);
``error`` when the counts cannot be read (database or Sentry unreachable, a deploy time unknown);
``pass`` otherwise. ``on_too_few: pass`` passes what cannot be told instead: a quiet app (too few
errors, whole window observed) or a first deploy (no previous release).

Counts come from conveyor's own error store (``source: conveyor``) or Sentry's API (``source: sentry``),
see :mod:`conveyor.checks.error_counts`. Releases are named ``release_prefix`` + version in both, the way
the app reports them to its SDK (``SENTRY_RELEASE``). The measurement's message carries the counts,
windows, observed ratio and p-value (``conveyor why`` shows it); its ``value`` is the same as JSON.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.error_counts import (
    ConveyorErrorCounts,
    ErrorCounts,
    ErrorCountsUnavailable,
    SentryErrorCounts,
)
from conveyor.config.durations import Duration
from conveyor.config.urls import BaseUrl
from conveyor.domain.error_rate import ErrorRateLimits, WindowCounts, judge_error_rate
from conveyor.domain.model import Measurement
from conveyor.steps import StepContext

__all__ = ["ErrorRateCheck", "ErrorRateOptions", "SentryOptions", "Windows", "windows_for"]


class SentryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: BaseUrl = "https://sentry.io"
    org: str = Field(min_length=1)
    project: str | None = None  # a project slug or numeric id; default: the app's name
    token: SecretStr  # an auth token with event:read, e.g. ${SENTRY_TOKEN}
    query: str = "event.type:error"  # Sentry search terms every count adds to
    timeout: Annotated[Duration, Field(gt=0, le=60)] = 10.0


class ErrorRateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_ratio: float = Field(default=2.0, gt=0)
    min_events: int = Field(default=10, ge=0)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    window: Annotated[Duration, Field(gt=0)] = 300.0
    baseline: Annotated[Duration, Field(gt=0)] = 3600.0
    source: Literal["conveyor", "sentry"] = "conveyor"
    sentry: SentryOptions | None = None
    release_prefix: str = ""  # releases are named release_prefix + version, e.g. "{app}@"
    by_release: bool = True  # count only the new release after, the previous one before
    on_too_few: Literal["inconclusive", "pass"] = "inconclusive"

    @model_validator(mode="after")
    def _sentry_needs_its_settings(self) -> ErrorRateOptions:
        if self.source == "sentry" and self.sentry is None:
            raise ValueError("source: sentry needs a sentry: block with at least org and token")
        if self.source == "conveyor" and self.sentry is not None:
            raise ValueError("a sentry: block is only read with source: sentry")
        return self

    def limits(self) -> ErrorRateLimits:
        return ErrorRateLimits(max_ratio=self.max_ratio, min_events=self.min_events, alpha=self.alpha)


@dataclass(frozen=True)
class Windows:
    """The two windows one measurement counts in (half-open: start <= t < end)."""

    before_start: datetime
    before_end: datetime
    after_start: datetime
    after_end: datetime
    filled: bool  # the after window has its full length

    @property
    def before_seconds(self) -> float:
        return max(0.0, (self.before_end - self.before_start).total_seconds())

    @property
    def after_seconds(self) -> float:
        return max(0.0, (self.after_end - self.after_start).total_seconds())


# a measurement this close to a full after window waits for it rather than call the release inconclusive
FILL_WAIT_SECONDS = 5.0


def windows_for(request: CheckRequest, opts: ErrorRateOptions, now: datetime) -> Windows | str:
    """The windows to count in at ``now``, or why there are none.

    Every bound is a whole second (Sentry's API takes seconds), rounded so that no window reaches into the
    deploy: the after window starts at or after the deploy finished, the baseline ends at or before it
    started and begins at or after the previous release's deploy finished.
    """
    if request.deployed_at is None:
        return "the deploy's finish time is unknown (no succeeded deploy step for this deployment)"
    deployed = _ceil(request.deployed_at)
    now = _floor(now)
    after_start = min(now, max(deployed, now - timedelta(seconds=opts.window)))
    before_end = _floor(request.deploy_started_at or request.deployed_at)
    before_start = before_end - timedelta(seconds=opts.baseline)
    if opts.by_release and request.previous_deployed_at is not None:
        before_start = min(before_end, max(before_start, _ceil(request.previous_deployed_at)))
    filled = (now - deployed).total_seconds() >= opts.window
    return Windows(
        before_start=before_start, before_end=before_end, after_start=after_start, after_end=now, filled=filled
    )


def _floor(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _ceil(moment: datetime) -> datetime:
    return _floor(moment) + timedelta(seconds=1) if moment.microsecond else moment


def utc_now() -> datetime:
    return datetime.now(UTC)


class ErrorRateCheck(Check):
    """Compare the error rate after the deploy with the previous release's, by an exact count test."""

    name = "error_rate"
    Options = ErrorRateOptions

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self._sentry: dict[tuple[str, str, str, str, str, float], SentryErrorCounts] = {}
        self._lock = threading.Lock()

    def measure(self, request: CheckRequest, ctx: StepContext) -> Measurement:
        opts = cast(ErrorRateOptions, request.options)
        windows = windows_for(request, opts, self.clock())
        if isinstance(windows, str):
            return Measurement.errored(windows)
        if not windows.filled and request.deployed_at is not None:
            # Measured as the window fills (``initial_delay`` equal to ``window``, as the docs advise), the
            # whole seconds its bounds are rounded to leave it a second or two short: wait for them.
            left = (_ceil(request.deployed_at) + timedelta(seconds=opts.window) - self.clock()).total_seconds()
            if 0 < left <= FILL_WAIT_SECONDS:
                if ctx.wait(left):
                    return Measurement.errored("cancelled")
                windows = cast(Windows, windows_for(request, opts, self.clock()))
        if opts.by_release and request.previous_version is None:
            nothing = f"no previous release ran in {request.environment} to compare {request.version} with"
            if opts.on_too_few == "pass":
                return Measurement.passed(f"{nothing} (on_too_few: pass)")
            return Measurement.inconclusive(nothing)
        source = self._source(request, opts)
        release = opts.release_prefix + request.version if opts.by_release else None
        previous = opts.release_prefix + (request.previous_version or "") if opts.by_release else None
        try:
            after = source.count(request.app, request.environment, windows.after_start, windows.after_end, release)
            if ctx.cancelled.is_set():
                return Measurement.errored("cancelled")
            before = source.count(request.app, request.environment, windows.before_start, windows.before_end, previous)
        except ErrorCountsUnavailable as exc:
            return Measurement.errored(str(exc))
        counts = WindowCounts(
            before=before, before_seconds=windows.before_seconds, after=after, after_seconds=windows.after_seconds
        )
        verdict = judge_error_rate(counts, opts.limits())
        phase, message = verdict.phase, verdict.reason
        if phase in ("pass", "inconclusive") and not windows.filled:  # on_too_few applies to a full window
            phase = "inconclusive"
            message = f"after window not full yet ({counts.after_seconds:.0f}s of {opts.window:g}s): {message}"
        elif phase == "inconclusive" and opts.on_too_few == "pass" and windows.filled and verdict.too_few:
            phase, message = "pass", f"{message} (on_too_few: pass)"
        ctx.log(
            f"error_rate windows: after {windows.after_start.isoformat()} .. {windows.after_end.isoformat()}"
            f" ({release or 'any release'}), before {windows.before_start.isoformat()} .."
            f" {windows.before_end.isoformat()} ({previous or 'any release'}), source {opts.source}"
        )
        value = json.dumps(
            {
                "after": after,
                "after_seconds": counts.after_seconds,
                "after_window": [windows.after_start.isoformat(), windows.after_end.isoformat()],
                "before": before,
                "before_seconds": counts.before_seconds,
                "before_window": [windows.before_start.isoformat(), windows.before_end.isoformat()],
                "ratio": _finite(counts.ratio),
                "p_value": verdict.p_value,
                "max_ratio": opts.max_ratio,
                "alpha": opts.alpha,
                "min_events": opts.min_events,
            },
            separators=(",", ":"),
        )
        return Measurement(phase, message, value)

    def _source(self, request: CheckRequest, opts: ErrorRateOptions) -> ErrorCounts:
        if opts.source == "conveyor" or opts.sentry is None:
            return ConveyorErrorCounts(request.database_url)
        s = opts.sentry
        project = s.project or request.app
        key = (s.url, s.org, project, s.token.get_secret_value(), s.query, s.timeout)
        with self._lock:
            source = self._sentry.get(key)
            if source is None:
                source = self._sentry[key] = SentryErrorCounts(
                    url=s.url,
                    org=s.org,
                    project=project,
                    token=s.token.get_secret_value(),
                    query=s.query,
                    timeout=s.timeout,
                )
            return source


def _finite(ratio: float | None) -> float | str | None:
    return "inf" if ratio is not None and math.isinf(ratio) else ratio
