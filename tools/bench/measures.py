"""What the benchmarks read off processes and how they summarize: CPU seconds and memory from
/proc, nearest-rank percentiles, and the `--set NAME=VALUE` option for the services' settings."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine has had so far, and how many of them were busy (neither
    idle nor waiting for I/O), over all cores."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    per_tick = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]
    return sum(ticks) / per_tick, (sum(ticks) - idle) / per_tick


def cores_busy(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Cores kept busy on average between two `machine_cpu_seconds()` readings."""
    total, busy = after[0] - before[0], after[1] - before[1]
    return round(busy / total * (os.cpu_count() or 1), 2) if total > 0 else 0.0


def rss_mb(pid: int) -> float:
    """A process's resident memory (VmRSS), in MB (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (NaN when there are none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def add_settings_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a HOOKLINE_* setting of the services, by lower-case name",
    )


def settings_of(args: argparse.Namespace) -> dict[str, str]:
    """The `--set` options as settings by lower-case name."""
    return dict(item.split("=", 1) for item in args.set)


def bucket_counts(text: str, name: str) -> dict[float, float]:
    """A histogram's cumulative bucket counts (`le` bound: count) in a Prometheus text
    exposition, summed over its other labels."""
    counts: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        sample, _, value = line.rpartition(" ")
        bound = sample.split('le="', 1)[1].split('"', 1)[0]
        key = float("inf") if bound == "+Inf" else float(bound)
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def bucket_quantile(counts: dict[float, float], fraction: float) -> float:
    """The upper bound of the bucket that holds the `fraction` quantile (NaN when empty): what
    a histogram can tell, no finer."""
    bounds = sorted(counts)
    if not bounds or counts[bounds[-1]] <= 0:
        return float("nan")
    wanted = fraction * counts[bounds[-1]]
    return next(bound for bound in bounds if counts[bound] >= wanted)
