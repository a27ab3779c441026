"""The compatibility gate: may the code's events replace the released ones?

The released schemas are the files under docs/contracts (`<type>.schema.json`). Two readers
must keep working after a change (ADR 15):

- a consumer built for the released schema, reading what the new producer sends: it still
  needs every field it knew, with values it accepts (it ignores fields it does not know);
- the new code, reading events published under the released schema (retained on Kafka, kept
  in workflow histories): they lack every field added since, and carry the old values.

So a field both versions have must accept exactly the same values, a field may be added only
if it is optional, and nothing may be removed. Our readers validate (pydantic), so even a
looser field breaks the first reader: a new enum value, null, a longer string.

    python -m concerto_contracts.compatibility docs/contracts   # check only
    python -m concerto_contracts.schemas docs/contracts         # check, then release
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

# Words for people; changing them changes nothing on the wire.
DESCRIPTIVE = {"title", "description", "default", "examples", "$comment", "deprecated"}
# Keywords compared below, one by one; any other keyword (pattern, maxLength, minimum, ...) is a
# constraint our readers check, so it must stay as it was.
STRUCTURAL = {
    "$id", "$defs", "$ref", "anyOf", "oneOf", "type", "format", "enum", "const",
    "properties", "required", "items", "additionalProperties",
}


def released(directory: Path) -> dict[str, dict]:
    """The released schemas: event type -> JSON Schema."""
    return {path.name.removesuffix(".schema.json"): json.loads(path.read_text()) for path in sorted(directory.glob("*.schema.json"))}


def check(old: dict[str, dict], new: dict[str, dict]) -> list[str]:
    """Every breaking change from the released schemas `old` to `new`, one readable line each
    (empty when `new` may be released). A new event type is fine."""
    problems = []
    for event_type in sorted(old):
        if event_type not in new:
            problems.append(_explain(event_type, "the event type was removed: consumers and retained events still use it"))
            continue
        before, after = old[event_type], new[event_type]
        problems += [_explain(event_type, what) for what in _compare(_Node(before, before), _Node(after, after), "")]
    return problems


def _explain(event_type: str, what: str) -> str:
    # The remedy goes with every problem: whoever meets it wants to know what to do instead.
    name, version = event_type.rsplit(".", 1)
    following = f"{name}.v{int(version[1:]) + 1}" if re.fullmatch(r"v\d+", version) else f"{name}.v2"
    return (
        f"{event_type}: {what}. Instead, keep the released fields as they are and add new data as an optional "
        f"field with a default (old events lack it, old consumers ignore it); or publish a new event {following} "
        f"beside {event_type} (a new class with version \"{following.rsplit('.', 1)[1]}\"), both published until "
        f"every consumer has moved (docs/decisions/0015-evolving-events.md)."
    )


class _Node:
    """A schema inside its document, which holds the `$defs` its `$ref`s point to."""

    def __init__(self, document: dict, schema: dict) -> None:
        self.document = document
        self.schema = self._resolve(schema)

    def _resolve(self, schema: dict) -> dict:
        # Follow `$ref` to the definition: what counts is the shape on the wire, not the name of
        # the definition (renaming a $def is fine; pointing to another shape is not).
        while "$ref" in schema:
            target = self.document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def at(self, schema: dict) -> _Node:
        return _Node(self.document, schema)

    def alternatives(self) -> tuple[list[_Node], bool]:
        """The non-null shapes a value may take, and whether it may be null (pydantic writes
        `X | None` as anyOf [X, {type: null}])."""
        options = self.schema.get("anyOf") or self.schema.get("oneOf")
        if options is None:
            kinds = self.schema.get("type")
            if isinstance(kinds, list) and "null" in kinds:  # {"type": ["string", "null"]}
                rest = [k for k in kinds if k != "null"]
                return [self.at({**self.schema, "type": rest[0] if len(rest) == 1 else rest})], True
            return [self], self.schema.get("type") == "null"
        nodes = [self.at(option) for option in options]
        return [n for n in nodes if n.schema.get("type") != "null"], any(n.schema.get("type") == "null" for n in nodes)


def _field(path: str) -> str:
    return f"field '{path}'" if path else "the event"


def _shape(node: _Node) -> str:
    kind, fmt = node.schema.get("type", "any"), node.schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _compare(old: _Node, new: _Node, path: str) -> Iterator[str]:
    old_options, old_null = old.alternatives()
    new_options, new_null = new.alternatives()
    if old_null and not new_null:
        yield f"{_field(path)} is no longer nullable: retained events may carry null"
    if new_null and not old_null:
        yield f"{_field(path)} became nullable: consumers built for the released schema reject null"
    if len(old_options) != len(new_options):
        yield f"{_field(path)} changed type: it was {' or '.join(map(_shape, old_options))}, now {' or '.join(map(_shape, new_options))}"
        return
    for old_option, new_option in zip(old_options, new_options):
        yield from _compare_shape(old_option, new_option, path)


def _compare_shape(old: _Node, new: _Node, path: str) -> Iterator[str]:
    a, b = old.schema, new.schema
    if (a.get("type"), a.get("format")) != (b.get("type"), b.get("format")):
        yield f"{_field(path)} changed type from {_shape(old)} to {_shape(new)}"
        return  # what lies beneath a changed type is beside the point
    if "enum" in a or "enum" in b:
        removed = [v for v in a.get("enum", []) if v not in b.get("enum", [])]
        added = [v for v in b.get("enum", []) if v not in a.get("enum", [])]
        if removed and "enum" in b:
            yield f"{_field(path)} narrowed its enum, {removed} removed: retained events may carry them"
        if added and "enum" in a:
            yield f"{_field(path)} widened its enum, {added} added: consumers built for the released schema reject them"
        if "enum" in a and "enum" not in b:
            yield f"{_field(path)} dropped its enum: consumers built for the released schema reject other values"
        if "enum" in b and "enum" not in a:
            yield f"{_field(path)} gained an enum: retained events may carry other values"
    if a.get("const") != b.get("const"):
        yield f"{_field(path)} changed its const from {a.get('const')!r} to {b.get('const')!r}"
    for keyword in sorted((set(a) | set(b)) - STRUCTURAL - DESCRIPTIVE):
        if a.get(keyword) != b.get(keyword):
            yield (
                f"{_field(path)} changed its constraint {keyword!r} from {a.get(keyword)!r} to {b.get(keyword)!r}: "
                "tighter rejects retained events, looser lets through what consumers built for the released schema reject"
            )
    if "properties" in a or "properties" in b:
        yield from _compare_object(old, new, path)
    if isinstance(a.get("items"), dict) and isinstance(b.get("items"), dict):
        yield from _compare(old.at(a["items"]), new.at(b["items"]), f"{path}[]")
    if isinstance(a.get("additionalProperties"), dict) and isinstance(b.get("additionalProperties"), dict):
        yield from _compare(old.at(a["additionalProperties"]), new.at(b["additionalProperties"]), f"{path}.*")  # a dict's values


def _compare_object(old: _Node, new: _Node, path: str) -> Iterator[str]:
    old_fields, new_fields = old.schema.get("properties", {}), new.schema.get("properties", {})
    old_required, new_required = set(old.schema.get("required", [])), set(new.schema.get("required", []))
    for name in old_fields:
        where = f"{path}.{name}" if path else name
        if name not in new_fields:
            yield f"{_field(where)} was removed"
            continue
        if name in new_required and name not in old_required:
            yield f"{_field(where)} became required: retained events may lack it"
        if name in old_required and name not in new_required:
            yield f"{_field(where)} is no longer required: consumers built for the released schema rely on it"
        yield from _compare(old.at(old_fields[name]), new.at(new_fields[name]), where)
    for name in new_fields:
        if name not in old_fields and name in new_required:
            yield f"new required {_field(f'{path}.{name}' if path else name)}: retained events lack it"
    # A field added without being required is what compatible evolution looks like: old
    # consumers drop it (they read tolerantly), new code takes its default for old events.


if __name__ == "__main__":
    from concerto_contracts.schemas import schemas

    found = check(released(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/contracts")), schemas())
    print("\n".join(found) or "compatible with the released schemas")
    sys.exit(1 if found else 0)
