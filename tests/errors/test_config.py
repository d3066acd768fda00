"""The ``errors:`` section: defaults, durations in days, and its mistakes reported at their place."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.config.errors import ConfigError
from conveyor.config.resolved import ErrorsConfig

BASE = "teams: {t: {notify: []}}\napps: {web: {repo: ./web, team: t, deploy: {driver: fake}}}\n"


def load(tmp_path: Path, text: str) -> ErrorsConfig:
    path = tmp_path / "conveyor.yaml"
    path.write_text(BASE + text)
    return load_config(path, {}).errors


def test_defaults_and_every_key(tmp_path: Path) -> None:
    assert load(tmp_path, "") == ErrorsConfig()
    assert ErrorsConfig().retention == 14 * 86400 and ErrorsConfig().counts_retention == 90 * 86400
    errors = load(
        tmp_path,
        "errors:\n  retention: 2d\n  counts_retention: 1d\n  max_body_bytes: 1000\n  max_decompressed_bytes: 10\n"
        "  rate_limit: {envelopes: 7, per: 30s}\n  spike: {min_events: 3, factor: 2.5, baseline: 30m, cooldown: 10m}\n",
    )
    assert errors.retention == 2 * 86400
    assert errors.counts_retention == 2 * 86400  # never shorter than the raw events it counts
    assert (errors.max_body_bytes, errors.max_decompressed_bytes) == (1000, 1000)
    assert (errors.rate_limit.envelopes, errors.rate_limit.per) == (7, 30.0)
    assert (errors.spike.min_events, errors.spike.factor, errors.spike.baseline, errors.spike.cooldown) == (
        3,
        2.5,
        1800.0,
        600.0,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("errors: {retention: 10s}", "'retention' in 'errors'"),
        ("errors: {rate_limit: {envelopes: 0}}", "'envelopes' in 'rate_limit' of 'errors'"),
        ("errors: {spike: {factr: 2}}", "factor"),
        ("errors: {retension: 1d}", "retention"),
    ],
)
def test_mistakes_are_reported_at_their_place(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text + "\n")
    assert message in str(raised.value)
    assert "conveyor.yaml:3:" in str(raised.value)
