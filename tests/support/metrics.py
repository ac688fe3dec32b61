"""Reading one value from a Prometheus text exposition, as a dashboard would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_value(exposition: str, series: str) -> float:
    """The value of `series` (`name` or `name{label="v",…}`, labels in any order); 0 if absent."""
    name, _, labels_text = series.partition("{")
    wanted = dict(part.split("=", 1) for part in labels_text.rstrip("}").split(",") if part.strip())
    wanted = {key.strip(): value.strip().strip('"') for key, value in wanted.items()}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    return 0.0
