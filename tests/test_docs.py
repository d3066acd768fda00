"""The docs are kept honest: a CLI command or option, an event kind or a config key that the code has and
the docs lack fails here. Everything is found from the code itself (the click group, the source of
``record_event`` calls, the pydantic models), so adding one without documenting it is what fails."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from conveyor.cli.main import cli
from conveyor.config import schema
from conveyor.domain.audit import OPERATOR_ACTIONS, OperatorAction

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "conveyor"


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


# -- docs/cli.md ---------------------------------------------------------------------------------------


def walk(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from walk(command, (*path, name))


COMMANDS = dict(walk(cli))
HEADING = re.compile(r"^#+\s.*$", re.MULTILINE)
CODE = re.compile(r"`([^`\n]+)`")


def command_line(path: tuple[str, ...]) -> str:
    return " ".join(("conveyor", *path))


def names_command(code: str, path: tuple[str, ...]) -> bool:
    """``conveyor db upgrade`` or ``conveyor release APP --ref REF`` names its command; ``conveyor dbx`` not."""
    wanted = command_line(path)
    return code == wanted or code.startswith(wanted + " ")


def sections(doc: str) -> dict[tuple[str, ...], str]:
    """Each command's text in cli.md: from the heading that names it to the next heading."""
    found: dict[tuple[str, ...], str] = {}
    headings = list(HEADING.finditer(doc))
    for i, heading in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(doc)
        codes = CODE.findall(heading.group())
        # the longest command a heading names wins: `conveyor db upgrade` is not `conveyor db`
        named = [p for p in COMMANDS if any(names_command(c, p) for c in codes)]
        if named:
            found[max(named, key=len)] = doc[heading.start() : end]
    return found


@pytest.mark.parametrize("path", list(COMMANDS), ids=command_line)
def test_every_command_is_in_the_cli_reference(path: tuple[str, ...]) -> None:
    doc = read("cli.md")
    in_headings = any(names_command(c, path) for h in HEADING.findall(doc) for c in CODE.findall(h))
    in_code = any(names_command(c, path) for c in CODE.findall(doc))
    assert in_headings or in_code, f"`{command_line(path)}` is not in docs/cli.md"


def options() -> Iterator[tuple[tuple[str, ...], str]]:
    for path, command in COMMANDS.items():
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    yield path, opt


@pytest.mark.parametrize(("path", "opt"), list(options()), ids=lambda v: v if isinstance(v, str) else command_line(v))
def test_every_option_is_in_its_command_section(path: tuple[str, ...], opt: str) -> None:
    documented = sections(read("cli.md"))
    if not COMMANDS[path].params:
        return
    assert path in documented, f"docs/cli.md has no heading naming `{command_line(path)}`"
    assert re.search(r"`" + re.escape(opt) + r"[` ]", documented[path]), (
        f"{opt} of `{command_line(path)}` is not in its section of docs/cli.md"
    )


@pytest.mark.parametrize("opt", [opt for param in cli.params for opt in param.opts] + ["--help"])
def test_every_root_option_is_in_the_cli_reference(opt: str) -> None:
    assert f"`{opt}`" in read("cli.md")


def test_the_database_variable_is_in_the_cli_reference() -> None:
    assert "`CONVEYOR_DATABASE_URL`" in read("cli.md")


# -- docs/concepts.md: event kinds ------------------------------------------------------------------------

# record_event(session, "kind", ...), record_events(session, "kind", ...), deployment_events(session, "kind",
# ...) and deployment_event(session, d, "kind", ...)
EVENT_CALL = re.compile(
    r"\b(?:(?:record_events?|deployment_events)\(\s*session\s*,|deployment_event\(\s*session\s*,\s*\w+\s*,)"
    r"\s*(?P<kind>[^,)]+)"
)


def event_calls() -> list[tuple[str, str]]:
    """(file, first argument after the session/deployment) of every event-recording call in src/conveyor."""
    calls = []
    for path in sorted(SRC.rglob("*.py")):
        for match in EVENT_CALL.finditer(path.read_text(encoding="utf-8")):
            calls.append((str(path.relative_to(ROOT)), match["kind"].strip()))
    return calls


def event_kinds() -> list[str]:
    return sorted({arg.strip("\"'") for _, arg in event_calls() if arg[:1] in "\"'"})


def test_every_event_call_names_its_kind_literally() -> None:
    """The scan below only sees literal kinds; forwarding a parameter called ``kind`` (the
    ``deployment_event`` helper) is the one exception, because its callers pass literals."""
    assert event_kinds(), "no event kinds found: has record_event moved?"
    hidden = [(file, arg) for file, arg in event_calls() if arg[:1] not in "\"'" and arg != "kind"]
    assert not hidden, f"event kinds the docs test cannot see: {hidden}"


@pytest.mark.parametrize("kind", event_kinds())
def test_every_event_kind_is_in_concepts(kind: str) -> None:
    concepts = DOCS / "concepts.md"
    assert concepts.exists(), "docs/concepts.md is missing"
    assert f"`{kind}`" in concepts.read_text(encoding="utf-8"), f"event kind {kind} is not in docs/concepts.md"


@pytest.mark.parametrize("action", OPERATOR_ACTIONS, ids=lambda a: a.name)
def test_every_operator_action_is_in_concepts(action: OperatorAction) -> None:
    kinds = " or ".join(f"`{kind}`" for kind in action.kinds)
    row = f"| `{action.name}` | {kinds} | {'required' if action.reason_required else 'optional'} |"
    assert row in read("concepts.md"), f"operator action {action.name} is not in the table of docs/concepts.md#audit"


# -- docs/configuration.md: config keys -------------------------------------------------------------------


def schema_models() -> list[type[BaseModel]]:
    """Every pydantic model defined in conveyor.config.schema (the file and everything nested in it)."""
    return [
        obj
        for _, obj in inspect.getmembers(schema, inspect.isclass)
        if issubclass(obj, BaseModel) and obj.__module__ == schema.__name__ and obj.model_fields
    ]


def config_keys() -> list[tuple[str, str]]:
    return sorted(
        {
            (model.__name__, field.alias or name)
            for model in schema_models()
            for name, field in model.model_fields.items()
        }
    )


def test_the_top_level_and_app_models_are_found() -> None:
    assert {schema.FileSection, schema.AppSection} <= set(schema_models())


@pytest.mark.parametrize(("model", "key"), config_keys(), ids=lambda v: v)
def test_every_config_key_is_in_configuration(model: str, key: str) -> None:
    assert f"`{key}`" in read("configuration.md"), f"{model}.{key} is not in docs/configuration.md"


# -- links between the docs ----------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.MULTILINE)}


PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
LINKS = [
    (page, target, anchor)
    for page in PAGES
    for target, anchor in re.findall(r"\]\(([\w./-]*?\.md|)#([^)\s]+)\)", page.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize(("page", "target", "anchor"), LINKS, ids=lambda v: v.name if isinstance(v, Path) else v)
def test_every_link_to_a_section_finds_it(page: Path, target: str, anchor: str) -> None:
    linked = (page.parent / target).resolve() if target else page
    assert linked.exists(), f"{page.name} links to {target}, which does not exist"
    assert anchor in _anchors(linked), f"{page.name} links to {target or page.name}#{anchor}: no such section"
