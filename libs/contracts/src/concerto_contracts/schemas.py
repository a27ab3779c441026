"""Each event's JSON Schema, and its release: `python -m concerto_contracts.schemas docs/contracts`.

The files under docs/contracts are the released schemas. Releasing writes the code's schemas
there, but only if every change is compatible with what is already released (see
compatibility.py and ADR 15); otherwise it prints why, writes nothing and exits with 1.

The schemas describe events as they travel (mode="serialization": amounts as strings, times as
RFC 3339 strings). `required` lists only the fields without a default: what every event of the
type carries, including those published before a field with a default was added.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from concerto_contracts.compatibility import check, released
from concerto_contracts.events import EVENT_TYPES


class IncompatibleSchemas(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def schemas() -> dict[str, dict]:
    return {
        event_type: {"$id": event_type, **cls.model_json_schema(mode="serialization")}
        for event_type, cls in EVENT_TYPES.items()
    }


def export(directory: Path) -> list[Path]:
    """Releases the code's schemas into `directory`; raises IncompatibleSchemas, writing
    nothing, if any change would break a consumer or a reader of retained events."""
    current = schemas()
    problems = check(released(directory), current) if directory.is_dir() else []
    if problems:
        raise IncompatibleSchemas(problems)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in current.items():
        path = directory / f"{event_type}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    try:
        for path in export(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/contracts")):
            print(path)
    except IncompatibleSchemas as refused:
        print("not released: these changes would break consumers or readers of retained events\n", file=sys.stderr)
        print("\n\n".join(refused.problems), file=sys.stderr)
        sys.exit(1)
