"""Settings every service shares, read from HOOKLINE_* environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from services.runtime.settings import DEFAULT_RETRY_SCHEDULE_S, ServiceSettings
from tests.support.catalog import EXAMPLE_CATALOG, REPO, entry, write_catalog


def test_defaults() -> None:
    """Without environment, a service uses the `hookline` prefix and the local broker."""
    settings = ServiceSettings()
    assert settings.prefix == "hookline"
    assert settings.host == "127.0.0.1"
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE_S
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.topology.prefix == "hookline"


def test_the_default_retry_schedule_spans_about_a_day() -> None:
    """The default delays add up to between 20 and 30 hours, each longer than the last or equal."""
    total_h = sum(DEFAULT_RETRY_SCHEDULE_S) / 3600
    assert 20 <= total_h <= 30
    assert list(DEFAULT_RETRY_SCHEDULE_S) == sorted(DEFAULT_RETRY_SCHEDULE_S)


def test_retry_schedule_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOOKLINE_RETRY_SCHEDULE `1,2.5, 10` is read as (1.0, 2.5, 10.0)."""
    monkeypatch.setenv("HOOKLINE_RETRY_SCHEDULE", "1,2.5, 10")
    assert ServiceSettings().retry_schedule == (1.0, 2.5, 10.0)


def test_an_empty_retry_schedule_means_never_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty HOOKLINE_RETRY_SCHEDULE is no retries at all."""
    monkeypatch.setenv("HOOKLINE_RETRY_SCHEDULE", "")
    assert ServiceSettings().retry_schedule == ()


@pytest.mark.parametrize("schedule", ["5,0,10", "-1", "1,abc"])
def test_bad_retry_delays_are_rejected(monkeypatch: pytest.MonkeyPatch, schedule: str) -> None:
    """A zero, negative or non-numeric delay is a settings error naming retry_schedule."""
    monkeypatch.setenv("HOOKLINE_RETRY_SCHEDULE", schedule)
    with pytest.raises(ValidationError) as caught:
        ServiceSettings()
    assert {problem["loc"][0] for problem in caught.value.errors()} == {"retry_schedule"}


def test_the_retry_schedule_makes_the_retry_tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The topology of the settings has one retry queue per distinct delay."""
    monkeypatch.setenv("HOOKLINE_PREFIX", "hl.a")
    monkeypatch.setenv("HOOKLINE_RETRY_SCHEDULE", "5,5,300")
    assert ServiceSettings().topology.retry_queues == ("hl.a.retry.5s", "hl.a.retry.5m")


@pytest.mark.parametrize("prefix", ["hook line", "", "a..b", "a/b"])
def test_a_bad_prefix_is_rejected(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """A prefix with spaces, slashes or empty words cannot name broker objects."""
    monkeypatch.setenv("HOOKLINE_PREFIX", prefix)
    with pytest.raises(ValidationError):
        ServiceSettings()


def test_the_amqp_url_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker URL carries a password, so repr never shows it."""
    monkeypatch.setenv("HOOKLINE_AMQP_URL", "amqp://user:hunter2@broker:5672/")
    settings = ServiceSettings()
    assert isinstance(settings.amqp_url, SecretStr)
    assert "hunter2" not in repr(settings)
    assert settings.amqp_url.get_secret_value() == "amqp://user:hunter2@broker:5672/"


@pytest.mark.parametrize("max_age", ["7 days", "7d", "D"])
def test_a_bad_max_age_is_rejected(monkeypatch: pytest.MonkeyPatch, max_age: str) -> None:
    """Stream ages follow RabbitMQ's syntax: a number and one of Y, M, D, h, m, s."""
    monkeypatch.setenv("HOOKLINE_EVENTS_MAX_AGE", max_age)
    with pytest.raises(ValidationError):
        ServiceSettings()


def test_no_catalog_by_default_accepts_every_event() -> None:
    catalog = ServiceSettings().event_catalog()
    assert len(catalog) == 0
    assert not catalog.checks
    assert catalog.problems("any.type", {"any": "data"}) == []


def test_the_catalog_comes_from_its_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_CATALOG_PATH", str(EXAMPLE_CATALOG))
    monkeypatch.setenv("HOOKLINE_UNCATALOGED_EVENTS", "refuse")
    catalog = ServiceSettings().event_catalog()
    assert "recordApproval" in catalog
    assert catalog.uncataloged == "refuse"
    assert catalog.refuses_type("problem.updated")


def test_a_broken_catalog_stops_the_start_naming_its_file_and_type(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The settings check the catalog whole: a service does not start on a broken one, and says
    which file and which type is wrong under the setting's name."""
    write_catalog(tmp_path, {"acme.json": {"events": {"order.paid": entry({"type": "strin"})}}})
    monkeypatch.setenv("HOOKLINE_CATALOG_PATH", str(tmp_path))
    with pytest.raises(ValidationError) as raised:
        ServiceSettings()
    [problem] = raised.value.errors()
    assert problem["loc"] == ("catalog_path",)
    assert f"{tmp_path / 'acme.json'}: type 'order.paid': schema is not valid" in problem["msg"]


def test_refusing_uncataloged_events_needs_a_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_UNCATALOGED_EVENTS", "refuse")
    with pytest.raises(ValidationError) as raised:
        ServiceSettings()
    [problem] = raised.value.errors()
    assert problem["loc"] == ("uncataloged_events",)
    assert "needs a catalog (HOOKLINE_CATALOG_PATH)" in problem["msg"]
    monkeypatch.setenv("HOOKLINE_UNCATALOGED_EVENTS", "drop")
    with pytest.raises(ValidationError):
        ServiceSettings()


def test_a_service_with_a_broken_catalog_exits_saying_what_is_wrong(tmp_path: Path) -> None:
    """`python -m services.producer` on a catalog with a bad example: exit 2 and one line naming
    the setting, the file, the type and the field, before it connects to anything."""
    write_catalog(
        tmp_path, {"acme.json": {"events": {"order.paid": entry(examples=[{"n": "one"}])}}}
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOOKLINE_INGEST_TOKEN": "t",
        "HOOKLINE_CATALOG_PATH": str(tmp_path),
    }
    run = subprocess.run(
        [sys.executable, "-m", "services.producer"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [
        "hookline producer: invalid settings",
        f"  HOOKLINE_CATALOG_PATH: Value error, {tmp_path / 'acme.json'}: type 'order.paid': "
        "examples[0] fails the schema: data.n: 'one' is not of type 'integer'",
    ]
