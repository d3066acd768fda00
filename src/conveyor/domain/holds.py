"""Which holds stop a deployment from starting now, and why: the one scoping function for every kind.

:func:`stopping` is used by the planner, by every start (re-checked in the transaction that starts),
by ``why``, ``status``, the operations that refuse a promotion or a deployment, and the API alike, so
they can never disagree. It answers with :class:`Obstacle` values, most binding first, each with its
explanation and the exact command that lifts it.

Kinds and scopes (see ``docs/concepts.md``):

- **block** (a failure, or by hand): the app in its environment and every later one (every
  environment when it names none). A release newer than the failed one may still try the failed
  environment itself (fix-forward); a block set by hand has no release, so only ``unblock`` lifts it.
- **veto**: one release of one app in one environment, rolled back from there: stops only automatic
  deployments of that release there; explicit ones (a person asked) and rollbacks pass.
- **stop** (stop-the-line): every app in one environment.
- **freeze**: exactly its scope (every app or one, every environment or one), never a later environment.
- **window**: an environment's opening hours (config); outside them the environment is closed.

A hold with an ``until`` in the past stops nothing. What an override passes is
:class:`~conveyor.domain.model.Override`'s business: a rollback passes everything here, ``--force``
passes stops, freezes and windows; nothing passes a lock (locks are not holds).

Pure: ``now`` is a parameter; time zones come from ``zoneinfo`` and public holidays from the
``holidays`` package, both computations on their own data.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import holidays as holiday_calendars

from conveyor.domain.model import HoldKind, Override

if TYPE_CHECKING:
    from conveyor.domain.snapshot import DeploymentView, HoldView

SYSTEM_ACTOR = "conveyor"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOOKAHEAD_DAYS = 400  # how far ahead a window's next opening is looked for

# what each override passes; a kind left out is passed by nothing
PASSED_BY: dict[str, frozenset[Override]] = {
    "block": frozenset({Override.ROLLBACK}),
    "veto": frozenset({Override.ROLLBACK}),
    "stop": frozenset({Override.ROLLBACK, Override.FORCE}),
    "freeze": frozenset({Override.ROLLBACK, Override.FORCE}),
    "window": frozenset({Override.ROLLBACK, Override.FORCE}),
}
ORDER = ("block", "veto", "stop", "freeze", "window")  # most binding first
FORCEABLE = frozenset(kind for kind, passed in PASSED_BY.items() if Override.FORCE in passed)


@functools.cache
def holiday_calendar(code: str) -> Any:
    """The public holidays of a calendar code such as ``GB-ENG`` (country, then subdivision) or ``FR``.

    ``NotImplementedError`` for a code the ``holidays`` package does not know."""
    country, _, subdivision = code.partition("-")
    return holiday_calendars.country_holidays(country, subdiv=subdivision or None)


@dataclass(frozen=True)
class Window:
    """When an environment is open for automatic starts: weekly hours in a time zone, less public
    holidays and extra closed dates. ``hours`` holds (weekday 0=Monday, opens, closes), local time."""

    environment: str
    timezone: str
    hours: tuple[tuple[int, time, time], ...]
    holidays: str | None = None
    closed: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def closed_on(self, day: date) -> str | None:
        """Why the whole of ``day`` (local) is closed, or None when its weekly hours apply."""
        if day in self.closed:
            return "closed date"
        if self.holidays is not None:
            name = holiday_calendar(self.holidays).get(day)
            if name:
                return f"public holiday: {name}"
        return None

    def _intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        return _day_intervals(self, day)

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        return any(opens <= now < closes for opens, closes in self._intervals(local.date()))

    def next_opening(self, now: datetime) -> datetime | None:
        """The next moment (local time) at or after ``now`` when the window opens; None if never."""
        day = now.astimezone(self.zone).date()
        for offset in range(LOOKAHEAD_DAYS):
            for opens, closes in self._intervals(day + timedelta(days=offset)):
                if opens <= now < closes:
                    return now.astimezone(self.zone)
                if opens > now:
                    return opens
        return None


@functools.lru_cache(maxsize=4096)
def _day_intervals(window: Window, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """A window's opening intervals on one local day, as aware datetimes (cached: a pass asks about the
    same few days for every waiting deployment)."""
    if window.closed_on(day) is not None:
        return ()
    zone = window.zone
    return tuple(
        sorted(
            (datetime.combine(day, opens, zone), datetime.combine(day, closes, zone))
            for weekday, opens, closes in window.hours
            if weekday == day.weekday()
        )
    )


@dataclass(frozen=True)
class HoldPolicy:
    """What the scoping function needs from the config: the order of environments and their windows."""

    environments: tuple[str, ...]
    windows: Mapping[str, Window] = field(default_factory=dict)


@dataclass(frozen=True)
class Attempt:
    """A deployment that would start: which release of which app where, and on whose behalf.

    ``release_id`` None asks about the next automatic deployment in general (``why`` with nothing
    queued): blocks apply in full and vetoes, which name a release, do not."""

    app: str
    environment: str
    release_id: int | None = None
    explicit: bool = False
    override: Override | None = None

    @classmethod
    def of(cls, d: DeploymentView) -> Attempt:
        return cls(d.app, d.environment, d.release_id, d.explicit, d.override)


@dataclass(frozen=True)
class Obstacle:
    """One thing that stops an attempt now: its kind, rule, one sentence, and the command that lifts it."""

    kind: str  # block, veto, stop, freeze, window
    rule: str
    summary: str
    lift: str
    hold: HoldView | None = None  # None for a window
    opens_at: datetime | None = None  # for a window

    @property
    def forceable(self) -> bool:
        """Passed by ``--force`` (break-glass)."""
        return Override.FORCE in PASSED_BY[self.kind]

    def evidence(self) -> dict[str, Any]:
        found: dict[str, Any] = {"kind": self.kind, "lift": self.lift}
        if self.hold is not None:
            found |= {
                "hold_id": self.hold.id,
                "actor": self.hold.actor,
                "since": self.hold.since.isoformat(),
                "until": self.hold.until.isoformat() if self.hold.until else None,
                "hold_app": self.hold.app,
                "hold_environment": self.hold.environment,
            }
        if self.opens_at is not None:
            found["opens_at"] = self.opens_at.isoformat()
        return found


def active(hold: HoldView, now: datetime) -> bool:
    return hold.until is None or now < hold.until


def stopping(attempt: Attempt, holds: Sequence[HoldView], policy: HoldPolicy, now: datetime) -> tuple[Obstacle, ...]:
    """The holds (and the window) that stop ``attempt`` from starting at ``now``, most binding first.

    ``holds`` are the holds not lifted; expired ones are ignored here, so a freeze's ``until`` needs no
    process to lift it."""
    found: list[Obstacle] = []
    for hold in holds:
        if not active(hold, now) or not _in_scope(attempt, hold, policy.environments):
            continue
        kind = HoldKind(hold.kind).value
        if attempt.override in PASSED_BY[kind]:
            continue
        found.append(_held(attempt, hold, kind))
    window = policy.windows.get(attempt.environment)
    if window is not None and attempt.override not in PASSED_BY["window"] and not window.is_open(now):
        found.append(_closed(attempt, window, now))
    found.sort(key=lambda o: (ORDER.index(o.kind), o.hold.since if o.hold else now, o.hold.id if o.hold else 0))
    return tuple(found)


def _in_scope(attempt: Attempt, hold: HoldView, environments: tuple[str, ...]) -> bool:
    kind = HoldKind(hold.kind)
    if hold.app is not None and hold.app != attempt.app:
        return False
    if kind == HoldKind.BLOCK:
        if hold.environment is None:
            return True
        if hold.environment not in environments or attempt.environment not in environments:
            return hold.environment == attempt.environment
        here, there = environments.index(attempt.environment), environments.index(hold.environment)
        if here < there:
            return False
        fix_forward = (
            here == there
            and hold.release_id is not None
            and attempt.release_id is not None
            and attempt.release_id > hold.release_id
        )
        return not fix_forward
    if kind == HoldKind.VETO:
        return (
            hold.environment == attempt.environment
            and attempt.release_id is not None
            and hold.release_id == attempt.release_id
            and not attempt.explicit
        )
    # stop and freeze: exactly their scope, never a later environment
    return hold.environment is None or hold.environment == attempt.environment


def _hhmm(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _until(hold: HoldView) -> str:
    return f" until {_hhmm(hold.until)}" if hold.until else ""


def _scope(hold: HoldView) -> str:
    who = hold.app or "every app"
    where = hold.environment or "every environment"
    return f"{who} in {where}"


def unblock_command(app: str, environment: str | None) -> str:
    env = f" --env {environment}" if environment else ""
    return f"conveyor unblock {app}{env} --reason TEXT"


def lift_command(hold: HoldView) -> str:
    """The exact command that lifts ``hold`` (a window has none: it opens on its own)."""
    kind = HoldKind(hold.kind)
    if kind == HoldKind.BLOCK:
        return unblock_command(hold.app or "APP", hold.environment)
    if kind == HoldKind.VETO:
        release = hold.label or f"#{hold.release_id}"
        return f"conveyor unveto {hold.app or 'APP'} {release} --env {hold.environment} --reason TEXT"
    return f"conveyor unfreeze {hold.id}"


def _held(attempt: Attempt, hold: HoldView, kind: str) -> Obstacle:
    since = f"since {_hhmm(hold.since)}"
    lift = lift_command(hold)
    if kind == "block":
        where = hold.environment or "every environment"
        by = f"{since} by {hold.actor}{_until(hold)}"
        if hold.release_id is not None:
            how = f"Lifts when a release newer than {hold.label or 'the failed one'} passes {where}, or run: {lift}"
        else:
            how = f"Lift: {lift}"
        if hold.environment is None:
            summary = f"blocked in every environment {by}: {hold.reason}. {how}"
        elif hold.environment == attempt.environment:
            summary = f"blocked {by}: {hold.reason}. {how}"
        else:
            summary = (
                f"held: {attempt.app} is blocked in {where} {by} ({hold.reason}), so nothing comes to "
                f"{attempt.environment} until that block lifts. {how}"
            )
        return Obstacle(kind, "HoldWhileBlocked", summary, lift, hold)
    if kind == "veto":
        release = hold.label or f"release #{hold.release_id}"
        summary = (
            f"vetoed: {release} was rolled back by {hold.actor} at {_hhmm(hold.since)} ({hold.reason}); "
            f"it is not started in {hold.environment} again automatically. Lift: {lift}"
        )
        return Obstacle(kind, "VetoRolledBackRelease", summary, lift, hold)
    if kind == "stop":
        summary = (
            f"line stopped in {hold.environment or 'every environment'} (hold #{hold.id}) {since} by "
            f"{hold.actor}{_until(hold)}: {hold.reason}. Lift: {lift}"
        )
        return Obstacle(kind, "HoldWhileLineStopped", summary, lift, hold)
    summary = f"frozen ({_scope(hold)}, hold #{hold.id}) {since} by {hold.actor}{_until(hold)}: {hold.reason}. "
    return Obstacle(kind, "HoldWhileFrozen", summary + f"Lift: {lift}", lift, hold)


def describe_opening(window: Window, opens: datetime | None, now: datetime) -> str:
    if opens is None:
        return "never opens in the next year"
    shown = opens.strftime("%a %H:%M") if opens - now < timedelta(days=6) else opens.strftime("%a %d %b %H:%M")
    return f"opens {shown} {window.timezone}"


def _closed(attempt: Attempt, window: Window, now: datetime) -> Obstacle:
    opens = window.next_opening(now)
    today = window.closed_on(now.astimezone(window.zone).date())
    why = f"; today: {today}" if today else ""
    summary = f"waiting for the {attempt.environment} window ({describe_opening(window, opens, now)}{why})"
    lift = "wait for the window to open, or deploy with --force --reason TEXT"
    return Obstacle("window", "WaitForWindow", summary, lift, None, opens)
