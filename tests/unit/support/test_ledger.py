"""Negative controls of the fault tests' counting: each check reports a doctored result as wrong.

A clean run (every delivery arrives, a failed attempt is retried on time, the log holds one chain
per delivery) passes; then one thing is changed at a time, and the check it concerns must fail.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.support.ledger import Arrival, Audit, Key, Logged, audit
from tests.support.receiver import Received

SCHEDULE = (1.0, 1.0, 2.0)
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EVENTS = [f"evt_{n}" for n in range(3)]
WEBHOOKS = ["wh_ok", "wh_flaky"]
EXPECTED: list[Key] = [(event, webhook) for event in EVENTS for webhook in WEBHOOKS]


def delivery_id(key: Key) -> str:
    return f"msg_{key[0]}_{key[1]}"


def clean_run() -> tuple[list[Arrival], list[Logged]]:
    """wh_ok answers at once; wh_flaky fails the first attempt and gets the retry 1.2 s later."""
    arrivals: list[Arrival] = []
    records: list[Logged] = []
    for n, key in enumerate(EXPECTED):
        at = float(n)
        delivery = delivery_id(key)
        if key[1] == "wh_flaky":
            arrivals.append(Arrival(key, delivery, at, 500))
            records.append(Logged(key, delivery, 1, "retry_scheduled", T0 + timedelta(seconds=at)))
            at += 1.2
            arrivals.append(Arrival(key, delivery, at, 200))
            records.append(Logged(key, delivery, 2, "delivered", T0 + timedelta(seconds=at)))
        else:
            arrivals.append(Arrival(key, delivery, at, 200))
            records.append(Logged(key, delivery, 1, "delivered", T0 + timedelta(seconds=at)))
    return arrivals, records


def audited(arrivals: list[Arrival], records: list[Logged] | None = None) -> Audit:
    return audit(EXPECTED, arrivals, schedule_s=SCHEDULE, records=records)


def test_a_clean_run_passes_and_its_figures_are_right() -> None:
    """The control of the controls: nothing is reported for a clean run."""
    arrivals, records = clean_run()
    result = audited(arrivals, records)
    assert result.problems() == []
    assert (result.duplicates, result.max_requests, result.max_attempt) == (0, 2, 2)
    assert result.worst_lateness_s is not None
    assert abs(result.worst_lateness_s - 0.2) < 1e-9


def test_an_event_that_never_arrived_is_reported_lost() -> None:
    """Removing every arrival of one delivery makes it lost."""
    arrivals, _ = clean_run()
    gone = EXPECTED[2]
    result = audited([arrival for arrival in arrivals if arrival.key != gone])
    assert result.lost == [gone]
    assert any(problem.startswith("lost: 1") for problem in result.problems())


def test_an_event_answered_only_with_failures_is_lost() -> None:
    """A delivery whose every request was answered 500 did not arrive."""
    arrivals, _ = clean_run()
    flaky = (EVENTS[0], "wh_flaky")
    result = audited([arrival for arrival in arrivals if arrival.key != flaky or not arrival.ok])
    assert result.lost == [flaky]


def test_a_repeat_under_another_webhook_id_is_reported() -> None:
    """A duplicate is allowed only with the same webhook-id."""
    arrivals, _ = clean_run()
    repeat = replace(arrivals[0], delivery_id="msg_other", at=arrivals[0].at + 5)
    result = audited([*arrivals, repeat])
    assert result.split == [arrivals[0].key]
    assert result.duplicates == 0  # the repeat counts under its own id


def test_duplicates_with_the_same_webhook_id_are_counted_not_failed() -> None:
    """At-least-once: a repeat with the same webhook-id is a duplicate, not a problem."""
    arrivals, _ = clean_run()
    result = audited([*arrivals, replace(arrivals[0], at=arrivals[0].at + 3)])
    assert result.problems() == []
    assert result.duplicates == 1


def test_a_webhook_id_seen_with_too_many_attempts_is_reported() -> None:
    """Five requests of one delivery on a four-attempt schedule is a doubled chain."""
    arrivals, _ = clean_run()
    first = arrivals[0]
    extra = [replace(first, at=first.at + n * 0.5, status=500) for n in range(1, 5)]
    result = audited([*arrivals, *extra])
    assert result.over_schedule == [(first.delivery_id, 5)]
    # and it can be switched off where repeats are expected (senders killed mid-request)
    assert (
        audit(
            EXPECTED, [*arrivals, *extra], schedule_s=SCHEDULE, bound_requests=False
        ).over_schedule
        == []
    )


def test_a_late_retry_is_reported() -> None:
    """A retry 12.5 s after a failure with a 1 s delay is later than 2 x 1 s + 10 s."""
    arrivals, _ = clean_run()
    doctored = [
        replace(arrival, at=arrival.at + 11.3)
        if arrival.key == (EVENTS[1], "wh_flaky") and arrival.ok
        else arrival
        for arrival in arrivals
    ]
    result = audited(doctored)
    [late] = result.late
    assert late.delay_s == 1.0
    assert late.allowed_s == 12.0
    assert abs(late.gap_s - 12.5) < 1e-9
    assert result.worst_lateness_s is not None
    assert abs(result.worst_lateness_s - 11.5) < 1e-9


def test_a_retry_just_in_time_is_not_late() -> None:
    """11.9 s after a 1 s delay is within 2 x 1 s + 10 s."""
    arrivals, _ = clean_run()
    doctored = [
        replace(arrival, at=arrival.at + 10.7)
        if arrival.key == (EVENTS[1], "wh_flaky") and arrival.ok
        else arrival
        for arrival in arrivals
    ]
    assert audited(doctored).late == []


def test_a_stray_arrival_is_reported() -> None:
    """A request for an event the test never sent is reported."""
    arrivals, _ = clean_run()
    stray = Arrival(("evt_other", "wh_ok"), "msg_x", 0.0, 200)
    assert audited([*arrivals, stray]).strays == [("evt_other", "wh_ok")]


def test_an_attempt_that_failed_twice_at_two_times_forks_the_chain() -> None:
    """Two `retry_scheduled` records of one attempt made at two times mean two retries went out."""
    arrivals, records = clean_run()
    failed = next(r for r in records if r.outcome == "retry_scheduled")
    doubled = replace(failed, at=failed.at + timedelta(seconds=0.3))
    result = audited(arrivals, [*records, doubled])
    assert result.forked_chains == [failed.delivery_id]
    assert result.repeated_attempts == 1


def test_a_chain_that_goes_on_after_a_delivered_attempt_is_forked() -> None:
    """Attempt 1 delivered and an attempt 2 after it: a retry went on beside the delivery."""
    arrivals, records = clean_run()
    delivered = records[0]
    later = replace(delivered, attempt=2, at=delivered.at + timedelta(seconds=1))
    result = audited(arrivals, [*records, later])
    assert result.forked_chains == [delivered.delivery_id]


def test_a_delivered_attempt_made_twice_is_a_duplicate_not_a_fork() -> None:
    """A delivered attempt made again (a second copy) published no retry: allowed, counted."""
    arrivals, records = clean_run()
    delivered = records[0]
    again = replace(delivered, at=delivered.at + timedelta(seconds=0.3))
    result = audited(arrivals, [*records, again])
    assert result.problems() == []
    assert result.repeated_attempts == 1


def test_one_record_published_twice_is_one_attempt() -> None:
    """A record republished after a lost confirm (same body, same time) is not a second attempt."""
    arrivals, records = clean_run()
    assert audited(arrivals, [*records, records[1]]).problems() == []


def test_an_attempt_past_the_schedule_is_reported() -> None:
    """A chain reaching attempt 5 on a 4-attempt schedule is wrong."""
    arrivals, records = clean_run()
    flaky = [record for record in records if record.key == (EVENTS[0], "wh_flaky")]
    more = [
        replace(flaky[0], attempt=attempt, at=flaky[0].at + timedelta(seconds=attempt))
        for attempt in (2, 3, 4)
    ]
    final = replace(flaky[1], attempt=5)
    result = audited(
        arrivals, [*(r for r in records if r.key != flaky[0].key), flaky[0], *more, final]
    )
    assert result.beyond_schedule == [(final.delivery_id, 5)]


def test_a_chain_that_never_ended_is_reported() -> None:
    """A retry scheduled but never recorded as attempted is a chain cut short."""
    arrivals, records = clean_run()
    last = next(r for r in records if r.key == (EVENTS[2], "wh_flaky") and r.attempt == 2)
    result = audited(arrivals, [record for record in records if record is not last])
    assert result.unfinished_chains == [last.delivery_id]


def test_an_attempt_missing_from_the_log_is_counted_not_failed() -> None:
    """Attempt 1's record lost, attempt 2 delivered: the log has a gap, the subscriber has all."""
    arrivals, records = clean_run()
    first = next(r for r in records if r.outcome == "retry_scheduled")
    result = audited(arrivals, [record for record in records if record is not first])
    assert result.problems() == []
    assert result.log_gaps == 1


def test_explain_shows_what_a_delivery_in_trouble_went_through() -> None:
    """The explanation names the delivery, what the receiver answered and what the log says."""
    arrivals, records = clean_run()
    first = arrivals[0]
    extra = [replace(first, at=first.at + n * 0.5, status=500) for n in range(1, 5)]
    text = audited([*arrivals, *extra], records).explain()
    assert f"{first.delivery_id}:" in text
    assert "receiver: +0.00s 200, +0.50s 500" in text
    assert "log: attempt 1 delivered" in text


def test_arrivals_are_read_from_received_requests() -> None:
    """An arrival takes the event and webhook from the body, the delivery from the header."""
    request = Received(
        path="/p",
        method="POST",
        headers={"webhook-id": "msg_1"},
        body=b'{"id": "evt_1", "webhook_id": "wh_1"}',
        at=3.0,
        status=503,
    )
    assert Arrival.of(request) == Arrival(("evt_1", "wh_1"), "msg_1", 3.0, 503)
