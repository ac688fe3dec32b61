"""The README's quickstart, and what `make run` prints beside it, can be pasted as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `python -m …` or `python3 -m …` not reached through a path: whatever `python` the shell finds,
# which is not the virtualenv `make run` installed Hookline into.
BARE_PYTHON = re.compile(r"(?<![\w/.-])python3? -m ")


def quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Quickstart")
    return readme[start : readme.index("\n## ", start + 1)]


def test_the_quickstart_runs_the_virtualenvs_python() -> None:
    """Every command of the quickstart that starts Python uses `.venv/bin/python`."""
    text = quickstart()
    assert ".venv/bin/python -m tools.receiver --port 9000 --secret" in text
    assert BARE_PYTHON.findall(text) == []


def test_make_run_points_at_the_virtualenvs_receiver() -> None:
    """The banner of `make run` shows the receiver's command as the quickstart gives it."""
    script = (ROOT / "deploy" / "run-local.sh").read_text()
    assert ".venv/bin/python -m tools.receiver --port 9000" in script
    assert BARE_PYTHON.findall(script) == []
