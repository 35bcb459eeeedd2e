"""Reading a config's YAML: ``yaml.safe_load``'s semantics (plain data only: no python
tags, nothing imported or run), with PyYAML's C parser where it has one, and refusals of
what ``safe_load`` would otherwise take silently or choke on:

- a duplicate key in a mapping (``safe_load`` keeps the last one): named with its key path
  and both lines;
- a text over :data:`MAX_BYTES`, nesting deeper than :data:`MAX_DEPTH` levels, or more
  than :data:`MAX_VALUES` values once every alias is expanded (an alias "bomb" is a few
  lines that expand to billions of values), and an alias inside its own anchor.

Anchors, aliases and merge keys (``<<: *base``) are read as ``safe_load`` reads them, except
that an alias's value is a copy: the mapping returned is a tree, so changing one place
(an override) does not change another.

The limits are checked on the parser's event stream, which is read without recursion and
without building anything, before the document is composed and constructed (PyYAML's
composer and constructor recurse once per nesting level)."""

from __future__ import annotations

import io
from typing import Any

import yaml

from cdkd_core.errors import ConfigError

#: the largest config text read (a config is a few KB)
MAX_BYTES = 1 << 20
#: the deepest nesting of mappings and lists (aliases expanded); a config needs about 6
MAX_DEPTH = 64
#: the most values (scalars, mappings and lists) with every alias expanded
MAX_VALUES = 100_000

#: past the limit, the parser reads on up to this depth to say how deep (PyYAML's Python
#: scanner slows down with the square of the depth of ``[[[...``)
_DEEPEST_SAID = 4 * MAX_DEPTH
_MERGE = "tag:yaml.org,2002:merge"
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class _Stream(io.StringIO):
    """The text as a stream with a name, so that the parser's messages name the file."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


class _DuplicateKey(Exception):
    def __init__(self, path: tuple[str, ...], key: Any, first: Any, second: Any) -> None:
        super().__init__(key)
        self.path, self.key, self.first, self.second = path, key, first, second


class _Checks:
    """Mixed into a safe loader: a mapping with the same key twice is refused.

    The check runs on the composed document, before anything is constructed: constructing
    a merge (``<<: *base``) rewrites the merged mapping's node in place."""

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_keys(node)
        return super().construct_document(node)  # type: ignore[misc]

    def _check_keys(self, root: yaml.Node) -> None:
        todo: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
        seen: set[int] = set()
        while todo:  # depth first, in document order; an alias's node once
            node, path = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                todo.extend((v, (*path, str(i))) for i, v in reversed(list(enumerate(node.value))))
            elif isinstance(node, yaml.MappingNode):
                self._check_mapping(node, path)
                todo.extend(
                    (v, (*path, str(k.value) if isinstance(k, yaml.ScalarNode) else "?"))
                    for k, v in reversed(node.value)
                )

    def _check_mapping(self, node: yaml.MappingNode, path: tuple[str, ...]) -> None:
        first: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                continue  # a merge's keys may be overridden; a list key is refused later
            key = self.construct_object(key_node)  # type: ignore[attr-defined]
            try:
                mark = first.setdefault(key, key_node.start_mark)
            except TypeError:  # unhashable: the constructor refuses it
                continue
            if mark is not key_node.start_mark:
                raise _DuplicateKey(path, key, mark, key_node.start_mark)


class PySafeLoader(_Checks, yaml.SafeLoader):
    """``yaml.SafeLoader`` (pure Python) with the duplicate-key check."""


_CLoader = getattr(yaml, "CSafeLoader", None)
if _CLoader is not None:

    class CSafeLoader(_Checks, _CLoader):  # type: ignore[misc, valid-type]
        """``yaml.CSafeLoader`` (libyaml) with the duplicate-key check."""

    SafeLoader: type = CSafeLoader
else:  # pragma: no cover - PyYAML built without libyaml
    SafeLoader = PySafeLoader


def _where(text: str, mark: Any) -> str:
    """``, line L`` for a text of several lines (not for a one-line override value)."""
    if mark is None or "\n" not in text.rstrip("\n"):
        return ""
    return f", line {mark.line + 1}"


class _Tally:
    """Nesting and values of the document read so far, aliases expanded."""

    def __init__(self, text: str, source: str) -> None:
        self.text, self.source = text, source
        self.open: list[list[Any]] = []  # per open mapping/list: [anchor, values, height]
        self.anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, height)
        self.total = 0
        self.deepest, self.first_deep = 0, None

    def refuse(self, mark: Any, message: str) -> ConfigError:
        return ConfigError(f"{self.source}{_where(self.text, mark)}: {message}")

    def add(self, values: int, height: int) -> None:
        """A finished value (scalar, alias, closed mapping/list) into the open one."""
        if self.open:
            self.open[-1][1] += values
            self.open[-1][2] = max(self.open[-1][2], height + 1)

    def count(self, values: int, mark: Any, alias: str | None = None) -> None:
        self.total += values
        if self.total > MAX_VALUES:
            detail = f"; the alias *{alias} stands for {values:,}" if alias else ""
            raise self.refuse(
                mark,
                f"over the limit of {MAX_VALUES:,} values (scalars, mappings and lists, "
                f"aliases expanded) for a config{detail}",
            )

    def event(self, event: yaml.Event) -> None:
        if isinstance(event, _OPEN):
            self.open.append([event.anchor, 1, 1])
            self.deepest = max(self.deepest, len(self.open))
            if self.first_deep is None and len(self.open) > MAX_DEPTH:
                self.first_deep = event.start_mark
            if self.first_deep is None:
                self.count(1, event.start_mark)
        elif isinstance(event, _CLOSE):
            anchor, values, height = self.open.pop()
            if anchor is not None:
                self.anchors[anchor] = (values, height)
            self.add(values, height)  # counted in the total already
        elif self.first_deep is not None:  # too deep: read on only to say how deep
            return
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                self.anchors[event.anchor] = (1, 0)
            self.count(1, event.start_mark)
            self.add(1, 0)
        elif isinstance(event, yaml.AliasEvent):
            self.alias(event)

    def alias(self, event: yaml.AliasEvent) -> None:
        name, mark = event.anchor, event.start_mark
        if any(frame[0] == name for frame in self.open):
            raise self.refuse(
                mark,
                f"the alias *{name} is inside its own anchor &{name} (a value that "
                "contains itself)",
            )
        if name not in self.anchors:
            return  # undefined: the composer names it
        values, height = self.anchors[name]
        if len(self.open) + height > MAX_DEPTH:
            raise self.refuse(
                mark,
                f"the alias *{name} nests {len(self.open) + height} levels deep, over the "
                f"limit of {MAX_DEPTH} levels",
            )
        self.count(values, mark, alias=name)
        self.add(values, height)


def _check_events(text: str, source: str, loader: type) -> None:
    """Refuse nesting deeper than MAX_DEPTH, more than MAX_VALUES values once aliases are
    expanded and an alias inside its own anchor, from the event stream alone."""
    parser = loader(_Stream(text, source))
    tally = _Tally(text, source)
    try:
        cut = ""
        while parser.check_event():
            tally.event(parser.get_event())
            if tally.deepest >= _DEEPEST_SAID:  # enough to say how deep
                cut = " at least"
                break
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml stops at 1000 levels
            tally.first_deep = tally.first_deep or getattr(exc, "problem_mark", None)
            tally.deepest = max(tally.deepest, 1000)
        if tally.first_deep is None:
            raise
        cut = " at least"  # the text breaks before the nesting ends
    finally:
        parser.dispose()
    if tally.first_deep is not None:
        raise tally.refuse(
            tally.first_deep,
            f"nested{cut} {tally.deepest:,} levels deep, over the limit of {MAX_DEPTH} "
            "levels (mappings and lists within each other)",
        )


def load_yaml(text: str, source: str, *, key_path: str = "", loader: type | None = None) -> Any:
    """Parse one YAML document of ``text`` as ``yaml.safe_load`` does, within the limits.

    A :class:`ConfigError` beginning with ``source`` refuses a duplicate key or a text
    beyond a limit; invalid YAML raises ``yaml.YAMLError`` for the caller to word.
    ``key_path`` is where the value goes in the config (an override's key), used in the
    name of a duplicate key; ``loader`` picks :class:`PySafeLoader` over the C one."""
    loader = loader or SafeLoader
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # e.g. an argument that was not UTF-8
        raise ConfigError(f"{source}: not UTF-8 text ({exc.reason})") from None
    if size > MAX_BYTES:
        raise ConfigError(
            f"{source}: {size:,} bytes, over the limit of {MAX_BYTES:,} bytes (1 MiB) for a config"
        )
    _check_events(text, source, loader)
    reader = loader(_Stream(text, source))
    try:
        return _unshare(reader.get_single_data())
    except _DuplicateKey as dup:
        key = ".".join(p for p in (key_path, *dup.path, str(dup.key)) if p)
        first = f" (first at line {dup.first.line + 1})" if _where(text, dup.first) else ""
        raise ConfigError(
            f"{source}{_where(text, dup.second)}: duplicate key {key!r}{first}; a key may "
            "appear once in a mapping"
        ) from None
    finally:
        reader.dispose()


def _unshare(value: Any) -> Any:
    """A copy in which an alias's value is a value of its own (as if written out again):
    an override of one place, or a stage changing its params, leaves the others alone."""
    if isinstance(value, dict):
        return {key: _unshare(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshare(item) for item in value]
    return value
