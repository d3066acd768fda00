"""Pydantic validation errors, said the way a user reads a config file.

Pydantic reports each error with a ``loc`` tuple into the validated data. :func:`explain` turns one error
into a message and the document path to point at: an unknown key points at the key (with a did-you-mean),
a missing key at the mapping that lacks it, anything else at the offending value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from conveyor.config.errors import did_you_mean
from conveyor.config.yaml_positions import YamlPath

_SHORT = {
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


@dataclass(frozen=True)
class Explained:
    path: YamlPath  # where in the document
    on_key: bool  # point at the key of that entry rather than its value
    message: str


@dataclass(frozen=True)
class Subject:
    """How to speak about the data one validation looked at.

    ``path_of`` maps a pydantic ``loc`` to a document path; ``describe`` names the mapping at a ``loc``
    ("app 'web'"); ``known_keys`` lists the keys allowed there, for did-you-mean.
    """

    path_of: Callable[[tuple[Any, ...]], YamlPath]
    describe: Callable[[tuple[Any, ...]], str]
    known_keys: Callable[[tuple[Any, ...]], Sequence[str]]


def explain(exc: ValidationError, subject: Subject) -> Iterator[Explained]:
    for error in exc.errors(include_url=False, include_input=True):
        yield _explain_one(error, subject)


def _explain_one(error: ErrorDetails, subject: Subject) -> Explained:
    loc = tuple(error["loc"])
    kind = error["type"]
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        container = loc[:-1]
        if kind == "string_pattern_mismatch":
            return Explained(subject.path_of(loc), True, _bad_name(error, subject.describe(container)))
        return Explained(subject.path_of(loc), True, f"bad key {loc[-1]!r} in {subject.describe(container)}")
    container, last = loc[:-1], (loc[-1] if loc else None)
    if kind == "extra_forbidden":
        key = str(last)
        hint = did_you_mean(key, subject.known_keys(container))
        return Explained(subject.path_of(loc), True, f"unknown key {key!r} in {subject.describe(container)}{hint}")
    if kind == "missing":
        return Explained(subject.path_of(loc), True, f"missing required key {last!r} in {subject.describe(container)}")
    if kind == "string_pattern_mismatch":
        return Explained(subject.path_of(loc), False, _bad_name(error, subject.describe(container)))
    return Explained(subject.path_of(loc), False, f"{_label(loc, subject)}: {short_message(error)}")


def _label(loc: tuple[Any, ...], subject: Subject) -> str:
    if not loc:
        return subject.describe(())
    last = loc[-1]
    name = f"item {last + 1}" if isinstance(last, int) else repr(last)
    return f"{name} in {subject.describe(loc[:-1])}"


def _bad_name(error: ErrorDetails, where: str) -> str:
    pattern = (error.get("ctx") or {}).get("pattern", "")
    return f"invalid name {error['input']!r} in {where}: names must match {pattern}"


def short_message(error: ErrorDetails) -> str:
    """One error's complaint about a value, lower-case, without pydantic's prefixes."""
    if error["type"] in _SHORT:
        return _SHORT[error["type"]]
    message = error["msg"].removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def describe_path(path: tuple[Any, ...]) -> str:
    """Name a place in ``conveyor.yaml`` the way a user would: "app 'web' environment 'staging'"."""
    match path:
        case ():
            return "the top level"
        case ("defaults",):
            return "defaults"
        case ("teams", str(team)):
            return f"team {team!r}"
        case ("groups", str(group)):
            return f"group {group!r}"
        case ("apps", str(app)):
            return f"app {app!r}"
        case ("apps", str(app), "environments", str(env)):
            return f"app {app!r} environment {env!r}"
        case (str(key),):
            return repr(key)
    *parent, last = path
    name = f"item {last + 1}" if isinstance(last, int) else repr(last)
    return f"{name} of {describe_path(tuple(parent))}"


def the_path(subject: str, loc: tuple[Any, ...]) -> str:
    """Name a place inside a plugin's options: "'headers' of check 'health' (type 'http')"."""
    for part in loc:
        subject = f"{f'item {part + 1}' if isinstance(part, int) else repr(part)} of {subject}"
    return subject
