"""Alert matchers in Alertmanager's syntax, and which environments a firing alert stops (pure)."""

from __future__ import annotations

import pytest

from conveyor.domain.alerts import Matcher, MatcherError, parse_matcher, stopped_environments

LABELS = {"alertname": "Http5xx", "app": "shop", "env": "production", "severity": "critical"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ('app="shop"', True),
        ("app=shop", True),
        ('app = "shop"', True),
        ('app="web"', False),
        ('app!="web"', True),
        ('app!="shop"', False),
        ('severity=~"critical|page"', True),
        ('severity=~"crit"', False),  # the regex matches the whole value, as in Alertmanager
        ('severity=~"crit.*"', True),
        ('severity!~"warning|info"', True),
        ('severity!~"critical|page"', False),
        ('team=""', True),  # a label the alert lacks is the empty string
        ('team!="ops"', True),
        ('team=~".+"', False),
        ('alertname="Http5xx"', True),
    ],
)
def test_matching(text: str, matches: bool) -> None:
    assert parse_matcher(text).matches(LABELS) is matches


def test_quoted_values_and_escapes() -> None:
    matcher = parse_matcher(r'summary="say \"hi\", then {go}\\n"')
    assert matcher.value == 'say "hi", then {go}\\n'
    assert matcher.matches({"summary": 'say "hi", then {go}\\n'})
    assert parse_matcher(matcher.text()) == matcher  # text() reads back as the same matcher


def test_text_is_what_alertmanager_reads() -> None:
    assert parse_matcher("severity=~critical|page").text() == 'severity=~"critical|page"'
    assert Matcher("a", "=", 'x"y').text() == 'a="x\\"y"'


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("app", "is not a matcher"),
        ('"app"="x"', "is not a matcher"),
        ('1app="x"', "is not a matcher"),
        ('app=="x"', "quote a value"),
        ('app="x', "closing quote"),
        ('app="x"y"', 'write \\" for a quote'),
        (r'app="\q"', "unknown escape"),
        ('app=~"("', "invalid regular expression"),
        ("app=a,b", "quote a value"),
    ],
)
def test_what_is_not_a_matcher(text: str, says: str) -> None:
    with pytest.raises(MatcherError, match=None) as raised:
        parse_matcher(text)
    assert says in str(raised.value)


def test_stopped_environments_need_every_matcher_of_a_rule() -> None:
    stop_on = {
        "staging": (parse_matcher('severity=~"critical|page"'), parse_matcher('env="staging"')),
        "production": (parse_matcher('severity="critical"'),),
        "integration": (),
    }
    assert [env for env, _ in stopped_environments(LABELS, stop_on)] == ["production"]
    staging_page = {**LABELS, "env": "staging", "severity": "page"}
    assert [env for env, _ in stopped_environments(staging_page, stop_on)] == ["staging"]
    staging_critical = {**LABELS, "env": "staging"}
    found = stopped_environments(staging_critical, stop_on)
    assert [env for env, _ in found] == ["staging", "production"]
    assert found[1][1] == (parse_matcher('severity="critical"'),)  # the rule that matched, as evidence
    assert stopped_environments({"severity": "warning"}, stop_on) == ()
