"""The ``windows`` section: per environment, when automatic starts may happen.

::

    windows:
      production:
        timezone: Europe/London        # an IANA time zone; hours and dates are local to it
        hours:                         # weekday or range of weekdays -> one or more HH:MM-HH:MM
          mon-thu: "09:30-17:00"
          fri: "09:30-12:00"
        holidays: GB-ENG               # public holidays of a calendar of the holidays package
        closed: [2026-12-24, 2026-12-31]

A day not listed in ``hours`` is closed; a public holiday or a ``closed`` date is closed all day.
Every mistake is reported at the line and column of the value at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conveyor.config.errors import ProblemLog, did_you_mean
from conveyor.config.yaml_positions import PositionedDocument, YamlPath
from conveyor.domain.holds import WEEKDAYS, Window, holiday_calendar

KEYS = ("timezone", "hours", "holidays", "closed")
INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class WindowResolver:
    def __init__(self, doc: PositionedDocument, log: ProblemLog) -> None:
        self.doc, self.log = doc, log

    def resolve(self, raw: Mapping[str, Any], environments: tuple[str, ...]) -> dict[str, Window]:
        windows: dict[str, Window] = {}
        for env, entry in raw.items():
            path: YamlPath = ("windows", env)
            if env not in environments:
                hint = did_you_mean(env, environments)
                self.log.add(
                    self.doc.key_at(path), f"unknown environment {env!r}{hint} (known: {', '.join(environments)})"
                )
                continue
            window = self._window(env, entry, path)
            if window is not None:
                windows[env] = window
        return windows

    def _problem(self, path: YamlPath, message: str) -> None:
        self.log.add(self.doc.at(path), message)

    def _window(self, env: str, entry: Any, path: YamlPath) -> Window | None:
        if not isinstance(entry, dict):
            self._problem(path, f"the window of {env} must be a mapping (timezone, hours, holidays, closed)")
            return None
        before = len(self.log)
        for key in entry:
            if key not in KEYS:
                self.log.add(
                    self.doc.key_at((*path, key)),
                    f"unknown key {key!r} in the window of {env}{did_you_mean(key, KEYS)} (known: {', '.join(KEYS)})",
                )
        zone = self._timezone(entry.get("timezone"), (*path, "timezone"))
        hours = self._hours(entry.get("hours"), (*path, "hours"))
        calendar = self._holidays(entry.get("holidays"), (*path, "holidays"))
        closed = self._closed(entry.get("closed"), (*path, "closed"))
        if len(self.log) > before or zone is None:
            return None
        return Window(env, zone, hours, calendar, closed)

    def _timezone(self, value: Any, path: YamlPath) -> str | None:
        if value is None:
            self._problem(path, "a window needs a timezone (an IANA name such as Europe/London)")
            return None
        try:
            if not isinstance(value, str) or not value:
                raise ValueError
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self._problem(path, f"unknown time zone {value!r} (use an IANA name such as Europe/London or UTC)")
            return None
        return value

    def _hours(self, value: Any, path: YamlPath) -> tuple[tuple[int, time, time], ...]:
        if not isinstance(value, dict) or not value:
            self._problem(path, 'a window needs hours: weekdays to times, e.g. mon-fri: "09:30-17:00"')
            return ()
        hours: list[tuple[int, time, time]] = []
        for days, spans in value.items():
            where = (*path, days)
            found = _days(str(days))
            if found is None:
                self.log.add(
                    self.doc.key_at(where),
                    f"invalid days {days!r}: use mon, tue, ... sun or a range such as mon-fri",
                )
                continue
            intervals = self._intervals(spans, where)
            hours.extend((day, opens, closes) for day in found for opens, closes in intervals)
        return tuple(sorted(hours))

    def _intervals(self, spans: Any, path: YamlPath) -> list[tuple[time, time]]:
        items = spans if isinstance(spans, list) else str(spans).split(",") if isinstance(spans, str) else [spans]
        intervals: list[tuple[time, time]] = []
        for item in items:
            parsed = _interval(item) if isinstance(item, str) else None
            if parsed is None:
                self._problem(
                    path,
                    f'invalid hours {item!r}: use "HH:MM-HH:MM", opening before closing (24:00 ends a day)',
                )
                continue
            intervals.append(parsed)
        return intervals

    def _holidays(self, value: Any, path: YamlPath) -> str | None:
        if value is None:
            return None
        try:
            if not isinstance(value, str):
                raise NotImplementedError
            holiday_calendar(value)
        except NotImplementedError:
            self._problem(
                path,
                f"unknown holiday calendar {value!r} (a country code of the holidays package, optionally with a "
                "subdivision: GB-ENG, US-CA, DE-BY, FR)",
            )
            return None
        return value

    def _closed(self, value: Any, path: YamlPath) -> frozenset[date]:
        if value is None:
            return frozenset()
        if not isinstance(value, list):
            self._problem(path, "closed must be a list of dates (YYYY-MM-DD)")
            return frozenset()
        dates: set[date] = set()
        for index, item in enumerate(value):
            if isinstance(item, date):
                dates.add(item)
                continue
            try:
                dates.add(date.fromisoformat(str(item)))
            except ValueError:
                self._problem((*path, index), f"invalid date {item!r} (use YYYY-MM-DD)")
        return frozenset(dates)


def _days(text: str) -> list[int] | None:
    days: list[int] = []
    for part in text.lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            return None
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if end < start:
            return None
        days.extend(range(start, end + 1))
    return days


def _interval(text: str) -> tuple[time, time] | None:
    match = INTERVAL.match(text)
    if match is None:
        return None
    oh, om, ch, cm = (int(g) for g in match.groups())
    if oh > 23 or om > 59 or cm > 59 or ch > 24 or (ch == 24 and cm != 0):
        return None
    opens = time(oh, om)
    closes = time.max if ch == 24 else time(ch, cm)
    if closes <= opens:
        return None
    return opens, closes
