"""YAML → plain Python values, remembering where every key and value starts in the file.

PyYAML composes the node tree (its marks carry positions); :class:`PositionedDocument` then builds dicts,
lists and scalars from it while recording, for every path (a tuple of keys and list indexes), the
position of the value and, for mapping entries, of the key. Problems found later are located by path.

Along the way: duplicate keys are problems (YAML's "last one wins" hides typos), mapping keys are kept
as the text the user wrote (so ``no:`` or ``8101:`` are strings, never booleans or numbers), merge keys
(``<<: *base``) work, and ``${VAR}`` in scalar strings is filled from the environment
(:mod:`conveyor.config.interpolation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from yaml.error import Mark, MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from conveyor.config.errors import Position, ProblemLog
from conveyor.config.interpolation import expand_environment

YamlPath = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


class PositionedLoader(yaml.SafeLoader):
    """PyYAML's safe loader; only its composer and scalar constructors are used (no Python objects)."""


def _position(mark: Mark | None) -> Position:
    return Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)


class PositionedDocument:
    """The document's data plus the position of every value (``value_marks``) and key (``key_marks``)."""

    def __init__(
        self, text: str, log: ProblemLog, environ: Mapping[str, str], unchecked: frozenset[str] = frozenset()
    ) -> None:
        self.log = log
        self.environ = environ
        self.unchecked = unchecked  # top-level sections whose unset ${VAR} are not problems (not used)
        self.value_marks: dict[YamlPath, Position] = {(): Position(1, 1)}
        self.key_marks: dict[YamlPath, Position] = {}
        self.secrets: set[str] = set()
        self.data: Any = None
        self.parsed = False  # False after a YAML syntax error: there is no data to check further
        self._loader = PositionedLoader(text)
        self._building: set[int] = set()
        try:
            node = self._loader.get_single_node()
            if node is not None:
                self.data = self._build(node, ())
            self.parsed = True
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            log.add(_position(mark), f"invalid YAML: {exc.problem or exc.context}")
        finally:
            self._loader.dispose()

    def at(self, path: YamlPath) -> Position:
        """Where the value at ``path`` is; for a path that is not in the file, where its parent is named."""
        if path in self.value_marks:
            return self.value_marks[path]
        while path:
            path = path[:-1]
            if path in self.key_marks:
                return self.key_marks[path]
            if path in self.value_marks:
                return self.value_marks[path]
        return Position(1, 1)

    def key_at(self, path: YamlPath) -> Position:
        """Where the key of the mapping entry at ``path`` is (or its value, for a list item)."""
        return self.key_marks.get(path) or self.at(path)

    def alias(self, path: YamlPath, key_path: YamlPath) -> None:
        """Let ``key_path`` be located where ``path`` is (used when reshaping data, e.g. a list of names)."""
        self.key_marks[key_path] = self.at(path)
        self.value_marks[key_path] = self.at(path)

    def _build(self, node: Node, path: YamlPath) -> Any:
        self.value_marks[path] = _position(node.start_mark)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._building:
            self.log.add(_position(node.start_mark), "a YAML alias refers to itself")
            return None
        self._building.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self._build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            return None
        finally:
            self._building.discard(id(node))

    def _scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        try:
            value = self._loader.construct_object(node)
        except ValueError as exc:  # a scalar YAML types but cannot build, such as the date 2026-13-01
            self.log.add(self.value_marks[path], f"invalid value {node.value!r}: {exc}")
            return None
        if not isinstance(value, str):
            return value
        expansion = expand_environment(value, self.environ)
        if path[:1] and path[0] in self.unchecked:
            expansion.missing.clear()
        for name in expansion.missing:
            self.log.add(self.value_marks[path], f"environment variable {name!r} is not set")
        self.secrets.update(s for s in expansion.secrets if s)
        return expansion.value

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any]:
        own = sum(1 for key, _ in node.value if key.tag != _MERGE_TAG)
        self._loader.flatten_mapping(node)  # merged entries first, then the mapping's own entries
        first_own = len(node.value) - own
        result: dict[str, Any] = {}
        own_keys: dict[str, Position] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            where = _position(key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self.log.add(where, "a mapping key must be a plain string")
                continue
            key = str(key_node.value)
            if index >= first_own:
                if key in own_keys:
                    first = own_keys[key]
                    self.log.add(where, f"duplicate key {key!r} (first at line {first.line})")
                    continue
                own_keys[key] = where
            self.key_marks[(*path, key)] = where
            result[key] = self._build(value_node, (*path, key))
        return result
