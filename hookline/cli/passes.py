"""Waiting for a redrive, discard or replay that runs in the background, with a progress bar."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hookline.cli.client import Answer, Api, Exit
from hookline.cli.output import Output

POLL_S = 0.5


def follow_pass(api: Api, started: Answer, output: Output) -> int:
    """Poll the pass a 202 points at until it ends; its final progress is printed. The exit
    status: OK when it finished, FAILED when it failed."""
    progress: dict[str, Any] = started.body
    location = started.headers.get("Location")
    if started.status == 202 and location:
        if output.as_json:
            while progress["status"] == "running":
                time.sleep(POLL_S)
                progress = api.request("GET", location).body
        else:
            progress = _with_bar(api, location, progress, output)
    output.record(progress)
    return Exit.OK if progress["status"] == "done" else Exit.FAILED


def _with_bar(api: Api, location: str, progress: dict[str, Any], output: Output) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=output.console, transient=True) as bar:
        task = bar.add_task("looking at messages", total=progress["total"] or None)
        while progress["status"] == "running":
            bar.update(task, completed=progress["looked_at"], total=progress["total"] or None)
            time.sleep(POLL_S)
            progress = api.request("GET", location).body
        bar.update(task, completed=progress["looked_at"])
    return progress


def follow_replay(api: Api, started: Answer, output: Output) -> int:
    """Poll a replay until it ends, showing what it has read and sent; its final progress is
    printed. OK when it finished, FAILED otherwise."""
    progress: dict[str, Any] = started.body
    location = started.headers["Location"]
    if output.as_json:
        while progress["status"] == "running":
            time.sleep(POLL_S)
            progress = api.request("GET", location).body
    else:
        with output.console.status("") as status:
            while progress["status"] == "running":
                status.update(
                    f"replaying: {progress['read']} events read, {progress['matched']} "
                    f"matched, {progress['sent']} sent"
                )
                time.sleep(POLL_S)
                progress = api.request("GET", location).body
    output.record(progress)
    return Exit.OK if progress["status"] == "done" else Exit.FAILED
