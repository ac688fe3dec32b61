"""`make bench` in small: every case runs and accounts for every delivery, so the benchmark cannot
rot. No figure is asserted: speed is measured by the benchmark, never by a test."""

from __future__ import annotations

import json

import pytest

from tests.conftest import RUN_PREFIX
from tools.bench import throughput

pytestmark = pytest.mark.e2e


def test_a_small_bench_accounts_for_every_delivery() -> None:
    args = throughput.parse_args(
        [
            "--runs=1",
            "--events=200",
            "--fanout10-events=20",
            "--many-webhooks=40",
            "--latency-seconds=1",
        ]
    )
    result = throughput.run(args, prefix=f"{RUN_PREFIX}-bench")
    json.dumps(result)  # the result file's content
    assert set(result["cases"]) == {"fanout1", "fanout10", "many"}
    for name, case in result["cases"].items():
        (run,) = case["runs"]
        for part in ("bare", "hookline"):
            assert run[part]["deliveries"] == 200, (name, part)
            assert run[part]["missing"] == 0, (name, part, run[part])
            assert run[part]["rate_dps"] > 0
        assert run["half_rate"]["missing"] == 0, (name, run["half_rate"])
        assert run["half_rate"]["events"] >= 1
        for part in ("half_rate", "bare_half_rate"):  # how busy the box was, and who kept it so
            assert 0 < run[part]["machine_cores_busy"] <= run[part]["machine_cores"], run[part]
        assert {"router", "sender-1", "sender-2"} <= set(run["half_rate"]["cores_busy_by_process"])
        assert "worker" in run["bare_half_rate"]["cores_busy_by_process"]
        assert case["summary"]["void"] is False
        assert {"router", "sender-1", "sender-2"} <= set(run["hookline"]["cpu_ms_per_delivery"])
    assert result["cases"]["many"]["setup"]["sender_start"]["ready_s"] > 0
