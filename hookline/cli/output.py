"""What a command prints: tables at a terminal, the API's JSON with `--json`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# column title → the field of each row it shows
Columns = Sequence[tuple[str, str]]


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console()
        self.errors = Console(stderr=True)

    def json(self, body: Any) -> None:
        sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")

    def json_line(self, body: Any) -> None:
        """One JSON object a line, written at once (a script may be reading as we go)."""
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def table(
        self, rows: Iterable[Mapping[str, Any]], columns: Columns, *, title: str = ""
    ) -> None:
        """Rows as a table (as one JSON array with `--json`)."""
        rows = list(rows)
        if self.as_json:
            self.json(rows)
            return
        table = Table(title=title or None, show_lines=False)
        for heading, _field in columns:
            table.add_column(heading, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(field)) for _heading, field in columns))
        self.console.print(table)

    def record(self, body: Mapping[str, Any], *, title: str = "") -> None:
        """One object, a field a line (as JSON with `--json`)."""
        if self.as_json:
            self.json(body)
            return
        table = Table(title=title or None, show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in body.items():
            table.add_row(key, _cell(value))
        self.console.print(table)

    def done(self, message: str, body: Mapping[str, Any] | None = None) -> None:
        """A line for a person, or `body` as JSON with `--json`."""
        if not self.as_json:
            self.console.print(message)
        elif body is not None:
            self.json(body)

    def error(self, message: str) -> None:
        # The API's words may hold brackets (`[3].id`): printed as text, never as markup.
        self.errors.print(Text.assemble(("error: ", "red"), message), highlight=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
