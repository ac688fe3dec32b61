"""Event catalogs for tests: the example one the repository ships, and small ones written to a
test's folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CATALOG = REPO / "catalog" / "examples"

# A record approval as Ketryx sends it: every field of the example catalog's schema.
RECORD_APPROVAL: dict[str, Any] = {
    "userId": "KXUSRFBQY0GKGNHBSV46F7R8YXJEN0C",
    "itemId": "KXITMWPS5W55T60CCB6T2057T02J8G8",
    "recordId": "KXREC1N91YGN3JB8PVT4DDFVF4Y64YT",
    "isControlled": True,
    "newRecordId": "KXREC4D9JZ8V9A8JDFV4MMASZE50B2G",
}

# Projectrak's example body, from its page.
PROJECTRAK_UPDATED: dict[str, Any] = {
    "data": {
        "event": "updated",
        "user": "DUMMY-ACCOUNT-ID-4c44-b436-73155f48d985",
        "timestamp": 1675182117615,
        "project": {"id": 13647, "key": "DEMO", "name": "Demo project"},
        "fields": [
            {
                "id": 12345,
                "name": "Budget",
                "type": "number",
                "value": {"current": "23.000", "previous": "25.000"},
            },
            {
                "id": 54321,
                "name": "Status",
                "type": "status",
                "value": {"current": "Done", "previous": "On track"},
            },
        ],
    }
}

# A small schema of one product's type: `{"n": <integer>}` required.
COUNTED: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
}


def entry(schema: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """A type of a catalog file."""
    return {"description": "something happened", "schema": schema or COUNTED, **more}


def write_catalog(folder: Path, files: dict[str, Any]) -> Path:
    """Writes each file (name → JSON value, or text as is) to `folder`; the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / name).write_text(text)
    return folder
