"""The one scoping function for holds (:func:`conveyor.domain.holds.stopping`), table by table.

Every row names a hold, an attempt and whether the hold stops it; each row is then run for every
override (none, ``--force``, rollback) and for automatic and explicit attempts, with what those pass
stated here on their own: force passes stops, freezes and windows; a rollback passes every hold; an
explicit deployment (a person asked) passes a veto only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import product

import pytest

from conveyor.domain.holds import Attempt, HoldPolicy, Window, lift_command, stopping
from conveyor.domain.model import HoldKind, Override
from conveyor.domain.snapshot import HoldView
from tests.unit.planner_builders import ENVS, NOW, minutes

POLICY = HoldPolicy(ENVS)


def hold(
    kind: HoldKind,
    app: str | None = None,
    env: str | None = None,
    release: int | None = None,
    *,
    id: int = 1,
    until: float | None = None,
    actor: str = "cli",
) -> HoldView:
    return HoldView(
        id, kind, app, env, release, f"{kind.value} reason", actor, minutes(-60),
        minutes(until) if until is not None else None, f"v{release}" if release else "",
    )  # fmt: skip


def auto_block(env: str, release: int, **kw: float | None) -> HoldView:
    return hold(HoldKind.BLOCK, "api", env, release, actor="conveyor", **kw)  # type: ignore[arg-type]


def manual_block(env: str | None, **kw: float | None) -> HoldView:
    return hold(HoldKind.BLOCK, "api", env, **kw)  # type: ignore[arg-type]


def freeze(app: str | None = None, env: str | None = None, **kw: float | None) -> HoldView:
    return hold(HoldKind.FREEZE, app, env, **kw)  # type: ignore[arg-type]


def stop(env: str, **kw: float | None) -> HoldView:
    return hold(HoldKind.STOP, None, env, **kw)  # type: ignore[arg-type]


def veto(env: str, release: int, **kw: float | None) -> HoldView:
    return hold(HoldKind.VETO, "api", env, release, **kw)  # type: ignore[arg-type]


# (name, hold, app, environment, release of the attempt, stops an automatic attempt with no override)
# fmt: off
ROWS: list[tuple[str, HoldView, str, str, int | None, bool]] = [
    # block after a failure of v5 in staging
    ("auto block: same env, failed release", auto_block("staging", 5), "api", "staging", 5, True),
    ("auto block: same env, older release", auto_block("staging", 5), "api", "staging", 4, True),
    ("auto block: same env, newer release fixes forward", auto_block("staging", 5), "api", "staging", 6, False),
    ("auto block: later env, newer release", auto_block("staging", 5), "api", "production", 6, True),
    ("auto block: later env, same release", auto_block("staging", 5), "api", "production", 5, True),
    ("auto block: earlier env", auto_block("staging", 5), "api", "integration", 5, False),
    ("auto block: other app", auto_block("staging", 5), "web", "staging", 5, False),
    ("auto block: no release asked (why)", auto_block("staging", 5), "api", "staging", None, True),
    ("auto block: until passed", auto_block("staging", 5, until=-1), "api", "staging", 5, False),
    ("auto block: until exactly now", auto_block("staging", 5, until=0), "api", "staging", 5, False),
    ("auto block: until later", auto_block("staging", 5, until=1), "api", "staging", 5, True),
    ("auto block: env no longer configured", auto_block("qa", 5), "api", "production", 5, False),
    # block by hand: no release, so no fix-forward
    ("manual block: same env, any release", manual_block("staging"), "api", "staging", 99, True),
    ("manual block: later env", manual_block("staging"), "api", "production", 99, True),
    ("manual block: earlier env", manual_block("staging"), "api", "integration", 99, False),
    ("manual block: every env", manual_block(None), "api", "integration", 99, True),
    ("manual block: other app", manual_block(None), "web", "integration", 99, False),
    ("manual block: until passed", manual_block(None, until=-5), "api", "integration", 99, False),
    # freeze: exactly its scope
    ("freeze all: integration", freeze(), "api", "integration", 6, True),
    ("freeze all: production, other app", freeze(), "web", "production", 6, True),
    ("freeze app: every env", freeze("api"), "api", "production", 6, True),
    ("freeze app: other app", freeze("api"), "web", "production", 6, False),
    ("freeze env: every app there", freeze(env="staging"), "web", "staging", 6, True),
    ("freeze env: never a later env", freeze(env="staging"), "web", "production", 6, False),
    ("freeze env: never an earlier env", freeze(env="staging"), "web", "integration", 6, False),
    ("freeze app+env: it", freeze("api", "staging"), "api", "staging", 6, True),
    ("freeze app+env: its later env", freeze("api", "staging"), "api", "production", 6, False),
    ("freeze app+env: other app there", freeze("api", "staging"), "web", "staging", 6, False),
    ("freeze: no fix-forward", freeze("api", "staging"), "api", "staging", 999, True),
    ("freeze: until passed", freeze(until=-30), "api", "staging", 6, False),
    ("freeze: until later", freeze(until=30), "api", "staging", 6, True),
    # stop-the-line: every app in one env
    ("stop: its env, any app", stop("production"), "web", "production", 6, True),
    ("stop: never a later or earlier env", stop("staging"), "web", "production", 6, False),
    ("stop: until passed", stop("production", until=-1), "web", "production", 6, False),
    # veto: one release of one app in one env
    ("veto: that release there", veto("production", 5), "api", "production", 5, True),
    ("veto: a newer release", veto("production", 5), "api", "production", 6, False),
    ("veto: an older release", veto("production", 5), "api", "production", 4, False),
    ("veto: other env", veto("production", 5), "api", "staging", 5, False),
    ("veto: other app", veto("production", 5), "web", "production", 5, False),
    ("veto: no release asked (why)", veto("production", 5), "api", "production", None, False),
    ("veto: until passed", veto("production", 5, until=-1), "api", "production", 5, False),
]
# fmt: on

FORCE_PASSES = {HoldKind.STOP, HoldKind.FREEZE}  # and windows
ROLLBACK_PASSES = {HoldKind.BLOCK, HoldKind.VETO, HoldKind.STOP, HoldKind.FREEZE}  # and windows
EXPLICIT_PASSES = {HoldKind.VETO}

CASES = [
    pytest.param(
        row, override, explicit, id=f"{row[0]}, {override or 'no override'}, {'explicit' if explicit else 'auto'}"
    )
    for row, override, explicit in product(ROWS, (None, Override.FORCE, Override.ROLLBACK), (False, True))
]


@pytest.mark.parametrize(("row", "override", "explicit"), CASES)
def test_scope(
    row: tuple[str, HoldView, str, str, int | None, bool], override: Override | None, explicit: bool
) -> None:
    _, h, app, env, release, stops_automatic = row
    passed = (
        (override == Override.FORCE and h.kind in FORCE_PASSES)
        or (override == Override.ROLLBACK and h.kind in ROLLBACK_PASSES)
        or (explicit and h.kind in EXPLICIT_PASSES)
    )
    found = stopping(Attempt(app, env, release, explicit, override), [h], POLICY, NOW)
    assert [o.hold for o in found] == ([h] if stops_automatic and not passed else [])


def test_most_binding_first_and_each_explains_itself() -> None:
    holds = [freeze(id=4), stop("production", id=3), auto_block("staging", 5, id=2), veto("production", 5, id=1)]
    found = stopping(Attempt("api", "production", 5), holds, POLICY, NOW)
    assert [o.kind for o in found] == ["block", "veto", "stop", "freeze"]
    block, vetoed, stopped, frozen = found
    assert "blocked in staging" in block.summary and "nothing comes to production" in block.summary
    assert block.lift == "conveyor unblock api --env staging --reason TEXT"
    assert vetoed.summary.startswith("vetoed: v5 was rolled back by cli at")
    assert vetoed.lift == "conveyor unveto api v5 --env production --reason TEXT"
    assert stopped.lift == "conveyor unfreeze 3" and "line stopped in production (hold #3)" in stopped.summary
    assert frozen.lift == "conveyor unfreeze 4" and "frozen (every app in every environment, hold #4)" in frozen.summary
    assert [o.forceable for o in found] == [False, False, True, True]


def test_a_freeze_never_says_unblock_and_a_block_never_says_env_none() -> None:
    [frozen] = stopping(Attempt("api", "staging"), [freeze("api", "staging", until=90)], POLICY, NOW)
    assert "unblock" not in frozen.summary and "None" not in frozen.summary
    assert f"by cli until {minutes(90):%Y-%m-%d %H:%M} UTC" in frozen.summary
    [blocked] = stopping(Attempt("api", "staging"), [manual_block(None)], POLICY, NOW)
    assert blocked.lift == "conveyor unblock api --reason TEXT"
    assert "None" not in blocked.summary
    assert blocked.summary.startswith("blocked in every environment since")


def test_lift_command_of_each_kind() -> None:
    assert lift_command(auto_block("staging", 5)) == "conveyor unblock api --env staging --reason TEXT"
    assert lift_command(freeze(id=7)) == "conveyor unfreeze 7"
    assert lift_command(stop("production", id=8)) == "conveyor unfreeze 8"
    assert lift_command(veto("production", 5)) == "conveyor unveto api v5 --env production --reason TEXT"


# -- windows -----------------------------------------------------------------------------------------

WEEKDAYS_0930_1700 = tuple((day, time(9, 30), time(17, 0)) for day in range(5))
LONDON = Window("production", "Europe/London", WEEKDAYS_0930_1700, holidays="GB-ENG", closed=frozenset())
WINDOWS = HoldPolicy(ENVS, {"production": LONDON})


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def closed(at: datetime, window: Window = LONDON, **attempt: object) -> str | None:
    policy = HoldPolicy(ENVS, {"production": window})
    found = stopping(Attempt("api", "production", 5, **attempt), [], policy, at)  # type: ignore[arg-type]
    return found[0].summary if found else None


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # winter (GMT = UTC): Monday 2026-03-23
        (utc(2026, 3, 23, 9, 29), "waiting for the production window (opens Mon 09:30 Europe/London)"),
        (utc(2026, 3, 23, 9, 30), None),
        (utc(2026, 3, 23, 16, 59), None),
        (utc(2026, 3, 23, 17, 0), "waiting for the production window (opens Tue 09:30 Europe/London)"),
        # Friday evening before the clocks go forward (Sunday 2026-03-29): Monday opens at 09:30 BST = 08:30 UTC
        (utc(2026, 3, 27, 18, 0), "waiting for the production window (opens Mon 09:30 Europe/London)"),
        (utc(2026, 3, 30, 8, 29), "waiting for the production window (opens Mon 09:30 Europe/London)"),
        (utc(2026, 3, 30, 8, 30), None),  # 09:30 BST
        (utc(2026, 3, 30, 15, 59), None),  # 16:59 BST
        (utc(2026, 3, 30, 16, 0), "waiting for the production window (opens Tue 09:30 Europe/London)"),  # 17:00 BST
        # the clocks go back on Sunday 2026-10-25: Friday 23rd is BST, Monday 26th is GMT
        (utc(2026, 10, 23, 8, 30), None),  # 09:30 BST
        (utc(2026, 10, 26, 8, 30), "waiting for the production window (opens Mon 09:30 Europe/London)"),
        (utc(2026, 10, 26, 9, 30), None),  # 09:30 GMT
        # a bank holiday: Easter Monday 2026-04-06, so Tuesday is next
        (
            utc(2026, 4, 6, 11, 0),
            "waiting for the production window (opens Tue 09:30 Europe/London; today: public holiday: Easter Monday)",
        ),
        # Christmas: Friday 25th and Monday 28th (Boxing Day substitute) are holidays
        (utc(2026, 12, 24, 18, 0), "waiting for the production window (opens Tue 09:30 Europe/London)"),
    ],
)
def test_window_in_london_across_dst_and_holidays(at: datetime, expected: str | None) -> None:
    assert closed(at) == expected


def test_extra_closed_dates_and_far_openings_name_the_date() -> None:
    window = Window("production", "Europe/London", WEEKDAYS_0930_1700, closed=frozenset({date(2026, 3, 23)}))
    assert closed(utc(2026, 3, 23, 11, 0), window) == (
        "waiting for the production window (opens Tue 09:30 Europe/London; today: closed date)"
    )
    sundays = Window("production", "UTC", ((6, time(10), time(11)),))
    assert closed(utc(2026, 3, 23, 11, 0), sundays) == "waiting for the production window (opens Sun 10:00 UTC)"
    blocked_for_a_week = Window("production", "UTC", ((0, time(10), time(11)),), closed=frozenset({date(2026, 3, 30)}))
    assert closed(utc(2026, 3, 23, 12, 0), blocked_for_a_week) == (
        "waiting for the production window (opens Mon 06 Apr 10:00 UTC)"
    )
    never = Window("production", "UTC", ())
    assert closed(utc(2026, 3, 23, 12, 0), never) == "waiting for the production window (never opens in the next year)"


def test_force_and_rollback_pass_a_closed_window_and_an_explicit_one_does_not() -> None:
    night = utc(2026, 3, 23, 23, 0)
    assert closed(night) is not None
    assert closed(night, explicit=True) is not None
    assert closed(night, override=Override.FORCE) is None
    assert closed(night, override=Override.ROLLBACK) is None
    [window] = stopping(Attempt("api", "production", 5), [], WINDOWS, night)
    assert (window.kind, window.hold, window.forceable) == ("window", None, True)
    assert window.opens_at == datetime(2026, 3, 24, 9, 30, tzinfo=LONDON.zone)
    assert stopping(Attempt("api", "staging", 5), [], WINDOWS, night) == ()  # only production has a window


def test_until_expiry_with_a_fixed_clock() -> None:
    ends = NOW + timedelta(minutes=30)
    frozen = HoldView(1, HoldKind.FREEZE, None, None, None, "r", "cli", NOW, ends)
    attempt = Attempt("api", "staging", 5)
    assert stopping(attempt, [frozen], POLICY, ends - timedelta(seconds=1))
    assert stopping(attempt, [frozen], POLICY, ends) == ()
