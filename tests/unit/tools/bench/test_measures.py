"""What the benchmarks read off a histogram (summed buckets, and the bucket a quantile is in),
and off the machine (how many cores were busy)."""

from __future__ import annotations

import math
import os

from tools.bench.measures import bucket_counts, bucket_quantile, cores_busy, machine_cpu_seconds

EXPOSED = """\
# HELP d_seconds How long.
# TYPE d_seconds histogram
d_seconds_bucket{le="0.005"} 2.0
d_seconds_bucket{le="0.05"} 8.0
d_seconds_bucket{le="+Inf"} 10.0
d_seconds_count 10.0
d_seconds_bucket{where="other",le="0.005"} 1.0
d_seconds_bucket{where="other",le="0.05"} 1.0
d_seconds_bucket{where="other",le="+Inf"} 2.0
other_bucket{le="0.005"} 99.0
"""


def test_bucket_counts_sum_every_label_set_of_the_histogram() -> None:
    assert bucket_counts(EXPOSED, "d_seconds") == {0.005: 3.0, 0.05: 9.0, math.inf: 12.0}


def test_a_quantile_is_the_bound_of_the_bucket_that_holds_it() -> None:
    counts = bucket_counts(EXPOSED, "d_seconds")
    assert bucket_quantile(counts, 0.25) == 0.005
    assert bucket_quantile(counts, 0.5) == 0.05
    assert bucket_quantile(counts, 0.99) == math.inf
    assert math.isnan(bucket_quantile({}, 0.5))


def test_cores_busy_is_the_busy_share_of_the_machine_times_its_cores() -> None:
    cores = os.cpu_count() or 1
    assert cores_busy((100.0, 40.0), (110.0, 45.0)) == round(0.5 * cores, 2)
    assert cores_busy((100.0, 40.0), (100.0, 40.0)) == 0.0  # no time passed: nothing measured


def test_the_machine_reading_counts_busy_seconds_within_all_seconds() -> None:
    total, busy = machine_cpu_seconds()
    assert 0 <= busy <= total
    later_total, later_busy = machine_cpu_seconds()
    assert later_total >= total
    assert later_busy >= busy
