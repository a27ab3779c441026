"""Exports each event's JSON Schema: `python -m concerto_contracts.schemas docs/contracts`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from concerto_contracts.events import EVENT_TYPES


def schemas() -> dict[str, dict]:
    return {
        event_type: {"$id": event_type, **cls.model_json_schema(mode="serialization")}
        for event_type, cls in EVENT_TYPES.items()
    }


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in schemas().items():
        path = directory / f"{event_type}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in export(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/contracts")):
        print(path)
