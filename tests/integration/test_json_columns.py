"""JSON columns are written and read by orjson, falling back to the standard library for what orjson
refuses, on SQLite and PostgreSQL alike: what comes back is what the standard library would give."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from sqlalchemy import select, text

from conveyor.store.database import Database, json_text, json_value
from conveyor.store.events import About, record_events
from conveyor.store.tables import Event

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


def test_values_round_trip_as_the_standard_library_would(db: Database) -> None:
    payloads = [
        {"nested": {"b": [1, 2.5, None, True]}, "text": "ünïcode ✓ \u2028"},
        {"wide": 2**70, "negative": -(2**65)},  # orjson refuses integers past 64 bits
        {1: "integer keys", "t": (1, 2)},
        {},
    ]
    with db.write() as session:
        ids = record_events(
            session, "step.started", at=NOW, actor="w", about=[About("m", "shop", payload=p) for p in payloads]
        )
    with db.read() as session:
        stored = [session.scalar(select(Event.payload).where(Event.id == i)) for i in ids]
    assert stored == [json.loads(json.dumps(p)) for p in payloads]


def test_the_standard_library_reads_what_orjson_refuses() -> None:
    assert math.isnan(json_value("NaN"))  # a value an older conveyor could write to SQLite
    assert json_value('{"a": [1, 2]}') == {"a": [1, 2]}
    assert json_value(b'{"a": 1}') == {"a": 1}


def test_text_is_json_the_standard_library_reads_back() -> None:
    for value in ({"b": 1, "a": [1.5, None]}, {2: "x"}, 2**70, "ünïcode", [0.1, 1e16]):
        assert json.loads(json_text(value)) == json.loads(json.dumps(value))


def test_a_nan_written_by_an_older_conveyor_is_read(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/conveyor.db")
    from conveyor.store.migrate import upgrade

    upgrade(db)
    with db.write() as session:
        [event_id] = record_events(session, "step.started", at=NOW, actor="w", about=[About("m")])
        session.execute(text("UPDATE events SET payload = '{\"ratio\": NaN}' WHERE id = :i"), {"i": event_id})
    with db.read() as session:
        payload = session.scalar(select(Event.payload).where(Event.id == event_id))
    db.dispose()
    assert math.isnan(payload["ratio"])
