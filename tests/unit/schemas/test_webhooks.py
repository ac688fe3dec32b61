"""Webhooks: the API's models, the records of their log and the fold over them."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.health import WebhookHealth
from schemas.markers import ReaderSynced
from schemas.webhooks import (
    MAX_DESCRIPTION_BYTES,
    WEBHOOK_RECORD,
    SecretRotate,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookDisabled,
    WebhookPatch,
    WebhookSecretRotated,
    WebhookState,
    WebhookUpdated,
    delivery_option_errors,
    evolve,
    new_secret,
    new_webhook_id,
)

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = AT + timedelta(minutes=5)
URI = "https://example.com/hook"


def error_locs(error: ValidationError) -> list[tuple[int | str, ...]]:
    return [tuple(problem["loc"]) for problem in error.errors()]


def created(**fields: Any) -> WebhookCreated:
    values: dict[str, Any] = {
        "at": AT,
        "webhook_id": "wh_1",
        "name": "hook",
        "event": "problem.update",
        "uri": URI,
        "secret": "whsec_c2VjcmV0",
    }
    values.update(fields)
    return WebhookCreated(**values)


# --- WebhookCreate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event", ["problem.update", "recordApproval", "problem.*", "*.create", "#", "a.#.b", "*"]
)
def test_create_accepts_exact_types_and_patterns(event: str) -> None:
    """An exact type or an AMQP pattern with `*` and `#` words is a valid subscription."""
    assert WebhookCreate(event=event, uri=URI).event == event


@pytest.mark.parametrize("event", ["", "problem.**", "a.#b", "problem update", "a..b", ".a"])
def test_create_rejects_malformed_event_patterns(event: str) -> None:
    """Wildcards inside a word, empty words and spaces are not patterns."""
    with pytest.raises(ValidationError) as caught:
        WebhookCreate(event=event, uri=URI)
    assert error_locs(caught.value) == [("event",)]


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com",
        "http://example.com/path?x=1&y=2",
        "https://example.com:8443/a/b/",
        "HTTPS://Example.COM/Hook",
    ],
)
def test_create_keeps_the_uri_exactly_as_given(uri: str) -> None:
    """An absolute http(s) URI is kept byte for byte: no trailing slash, no case folding."""
    assert WebhookCreate(event="a", uri=uri).uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://example.com/",
        "/relative/path",
        "example.com/hook",
        "https://example.com/a b",
        " https://example.com/",
        "https://example.com/\n",
        "https://user:password@example.com/",
        "https://user@example.com/",
        "",
        "http://a..b/hook",
        "https://" + "a" * 64 + ".example.com/",
    ],
)
def test_create_rejects_bad_uris(uri: str) -> None:
    """Non-http schemes, relative URIs, white space, credentials and hosts that are no domain
    name (an empty label, a label over 63 characters) are rejected."""
    with pytest.raises(ValidationError) as caught:
        WebhookCreate(event="a", uri=uri)
    assert error_locs(caught.value) == [("uri",)]


def test_create_accepts_a_description_of_64_kib_in_bytes() -> None:
    """A description of exactly 64 KiB of UTF-8 is accepted."""
    description = "é" * (MAX_DESCRIPTION_BYTES // 2)
    assert WebhookCreate(event="a", uri=URI, description=description).description == description


def test_create_counts_the_description_in_bytes_not_characters() -> None:
    """A description of fewer than 64 Ki characters but more than 64 KiB is rejected."""
    description = "é" * (MAX_DESCRIPTION_BYTES // 2 + 1)
    with pytest.raises(ValidationError) as caught:
        WebhookCreate(event="a", uri=URI, description=description)
    assert error_locs(caught.value) == [("description",)]


def test_create_normalises_the_mail_list() -> None:
    """`mail_exceptions_to` is a comma separated list, stored without the spaces around commas."""
    hook = WebhookCreate(event="a", uri=URI, mail_exceptions_to=" ops@example.com , dev@ex.org")
    assert hook.mail_exceptions_to == "ops@example.com,dev@ex.org"


@pytest.mark.parametrize(
    "mails", ["not-an-address", "ops@example.com,", "ops@example.com;dev@ex.org", "a b@ex.org"]
)
def test_create_rejects_a_bad_mail_list(mails: str) -> None:
    """Anything in the list that is not one e-mail address is rejected."""
    with pytest.raises(ValidationError) as caught:
        WebhookCreate(event="a", uri=URI, mail_exceptions_to=mails)
    assert error_locs(caught.value) == [("mail_exceptions_to",)]


def test_create_has_defaults_and_forbids_extra_fields() -> None:
    """Only event and uri are needed; an unknown field is an error."""
    hook = WebhookCreate(event="a", uri=URI)
    assert (hook.name, hook.description, hook.disabled, hook.mail_exceptions_to) == (
        None,
        None,
        False,
        None,
    )
    with pytest.raises(ValidationError) as caught:
        WebhookCreate.model_validate({"event": "a", "uri": URI, "owner": "me"})
    assert error_locs(caught.value) == [("owner",)]


def secret_of(size: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(size))).decode()


@pytest.mark.parametrize("size", [24, 32, 64])
def test_create_takes_a_secret_of_the_callers_choosing(size: int) -> None:
    assert WebhookCreate(event="a", uri=URI, secret=secret_of(size)).secret == secret_of(size)
    assert WebhookCreate(event="a", uri=URI).secret is None  # generated by the router


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("mine", "must start with whsec_"),
        (secret_of(32).removeprefix("whsec_"), "must start with whsec_"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(b"x" * 24).decode()[:-1], "base64"),
        (secret_of(23), "24 to 64 bytes, not 23"),
        (secret_of(65), "at most 128 characters|24 to 64 bytes"),
    ],
)
def test_a_secret_that_is_not_standard_webhooks_is_refused(secret: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        WebhookCreate(event="a", uri=URI, secret=secret)
    with pytest.raises(ValidationError, match=reason):
        SecretRotate(secret=secret)


def test_evolve_rotation_keeps_the_old_secret_signing_until_the_grace_ends() -> None:
    state = evolve(None, created(), 1)
    assert state is not None
    assert state.signing_secrets(AT) == ["whsec_c2VjcmV0"]
    rotated = evolve(
        state,
        WebhookSecretRotated(
            at=LATER,
            webhook_id="wh_1",
            secret=secret_of(32),
            previous_until=LATER + timedelta(hours=24),
        ),
        5,
    )
    assert rotated is not None
    assert (rotated.secret, rotated.updated_at, rotated.revision) == (secret_of(32), LATER, 5)
    assert rotated.signing_secrets(LATER) == [secret_of(32), "whsec_c2VjcmV0"]
    almost = LATER + timedelta(hours=24) - timedelta(seconds=1)
    assert rotated.signing_secrets(almost) == [secret_of(32), "whsec_c2VjcmV0"]
    assert rotated.signing_secrets(LATER + timedelta(hours=24)) == [secret_of(32)]
    # Read back as a record of the stream, it folds the same way.
    record = WEBHOOK_RECORD.validate_json(
        WebhookSecretRotated(
            at=LATER, webhook_id="wh_1", secret=secret_of(32), previous_until=LATER
        ).model_dump_json()
    )
    assert isinstance(record, WebhookSecretRotated)


# --- WebhookPatch -------------------------------------------------------------------------------


def test_patch_changes_are_only_the_fields_sent() -> None:
    """changes() holds the fields in the body and nothing else."""
    patch = WebhookPatch.model_validate({"disabled": True, "name": "renamed"})
    assert patch.changes() == {"disabled": True, "name": "renamed"}
    assert WebhookPatch.model_validate({}).changes() == {}


@pytest.mark.parametrize("field", ["description", "mail_exceptions_to"])
def test_patch_null_clears_an_optional_field(field: str) -> None:
    """`null` for description or mail_exceptions_to is a change that clears it."""
    assert WebhookPatch.model_validate({field: None}).changes() == {field: None}


@pytest.mark.parametrize(
    "field", ["event", "uri", "name", "disabled", "format", "method", "https_only", "signed"]
)
def test_patch_null_is_refused_for_required_fields(field: str) -> None:
    """`null` for event, uri, name or disabled is an error that names the field."""
    with pytest.raises(ValidationError) as caught:
        WebhookPatch.model_validate({field: None})
    assert error_locs(caught.value) == [(field,)]


def test_patch_validates_like_create() -> None:
    """A patch applies the same rules to uri and event as a create."""
    with pytest.raises(ValidationError) as caught:
        WebhookPatch.model_validate({"uri": "ftp://example.com/", "event": "a.**"})
    assert sorted(error_locs(caught.value)) == [("event",), ("uri",)]


def test_delivery_options_default_to_a_signed_standard_post() -> None:
    body = WebhookCreate.model_validate({"event": "a.b", "uri": URI})
    assert (body.format, body.method, body.https_only, body.signed) == (
        "standard",
        "POST",
        False,
        True,
    )


@pytest.mark.parametrize(
    ("uri", "payload_format", "method", "https_only", "fields"),
    [
        ("https://e.com/", "cloudevents", "POST", False, []),
        ("https://e.com/", "raw", "GET", True, []),
        ("HTTPS://e.com/", "standard", "POST", True, []),
        ("http://e.com/", "standard", "POST", True, ["uri"]),
        ("https://e.com/", "cloudevents", "GET", False, ["method"]),
        ("http://e.com/", "cloudevents", "GET", True, ["uri", "method"]),
    ],
)
def test_delivery_options_are_checked_together(
    uri: str, payload_format: Any, method: Any, https_only: bool, fields: list[str]
) -> None:
    errors = delivery_option_errors(
        uri=uri, payload_format=payload_format, method=method, https_only=https_only
    )
    assert [error["field"] for error in errors] == fields


# --- evolve -------------------------------------------------------------------------------------


def test_a_create_record_written_before_delivery_options_folds_to_their_defaults() -> None:
    """Records in a log older than `format` and the rest still fold, as a signed standard POST."""
    old = created().model_dump(mode="json")
    for field in ("format", "method", "https_only", "signed"):
        del old[field]
    state = evolve(None, WEBHOOK_RECORD.validate_python(old), 3)
    assert state is not None
    assert (state.format, state.method, state.https_only, state.signed) == (
        "standard",
        "POST",
        False,
        True,
    )
    changed = evolve(
        state, WebhookUpdated(at=LATER, webhook_id="wh_1", changes={"format": "xurrent"}), 4
    )
    assert changed is not None
    assert changed.format == "xurrent"
    assert changed.public().format == "xurrent"


def test_evolve_create_makes_the_state() -> None:
    """A create record makes a webhook whose revision is the record's offset."""
    state = evolve(None, created(description="d", mail_exceptions_to="a@b.co"), 7)
    assert state is not None
    assert (state.id, state.name, state.event, state.uri) == ("wh_1", "hook", "problem.update", URI)
    assert (state.description, state.mail_exceptions_to, state.disabled) == ("d", "a@b.co", False)
    assert state.secret == "whsec_c2VjcmV0"
    assert (state.created_at, state.updated_at, state.revision) == (AT, AT, 7)


def test_evolve_update_changes_the_fields_and_bumps_revision_and_updated_at() -> None:
    """An update changes the fields it names, and sets revision and updated_at."""
    state = evolve(None, created(), 1)
    update = WebhookUpdated(
        at=LATER, webhook_id="wh_1", changes={"disabled": True, "description": "x"}
    )
    after = evolve(state, update, 5)
    assert after is not None
    assert (after.disabled, after.description) == (True, "x")
    assert (after.revision, after.updated_at, after.created_at) == (5, LATER, AT)
    assert after.uri == URI


def test_evolve_update_ignores_immutable_fields() -> None:
    """An update cannot change the id, the secret or created_at."""
    state = evolve(None, created(), 1)
    changes = {"id": "wh_2", "secret": "whsec_b3RoZXI=", "created_at": LATER, "name": "new"}
    after = evolve(state, WebhookUpdated(at=LATER, webhook_id="wh_1", changes=changes), 2)
    assert after is not None
    assert (after.id, after.secret, after.created_at) == ("wh_1", "whsec_c2VjcmV0", AT)
    assert after.name == "new"


def test_evolve_delete_removes_the_webhook() -> None:
    """A delete record leaves no webhook."""
    state = evolve(None, created(), 1)
    assert evolve(state, WebhookDeleted(at=LATER, webhook_id="wh_1"), 2) is None


def test_evolve_replayed_create_never_overwrites() -> None:
    """A create read again after later changes keeps the later state."""
    state = evolve(None, created(), 1)
    updated = evolve(state, WebhookUpdated(at=LATER, webhook_id="wh_1", changes={"name": "n"}), 2)
    assert evolve(updated, created(name="replayed"), 3) == updated


def test_evolve_update_or_delete_of_a_missing_webhook_is_none() -> None:
    """Updating or deleting a webhook that does not exist leaves none."""
    update = WebhookUpdated(at=LATER, webhook_id="wh_1", changes={"name": "n"})
    assert evolve(None, update, 1) is None
    assert evolve(None, WebhookDeleted(at=LATER, webhook_id="wh_1"), 1) is None


def test_evolve_reader_synced_leaves_the_state_unchanged() -> None:
    """A reader's sync marker changes no webhook."""
    state = evolve(None, created(), 1)
    assert evolve(state, ReaderSynced(at=LATER, reader="router-1"), 2) == state
    assert evolve(None, ReaderSynced(at=LATER, reader="router-1"), 2) is None


def test_records_round_trip_through_json_by_kind() -> None:
    """Each record kind is read back from its JSON as the same record."""
    records = [
        created(),
        WebhookUpdated(at=LATER, webhook_id="wh_1", changes={"uri": URI}),
        WebhookDeleted(at=LATER, webhook_id="wh_1"),
        WebhookDisabled(at=LATER, webhook_id="wh_1", reason="410 Gone"),
        ReaderSynced(at=LATER, reader="sender-1"),
    ]
    for record in records:
        assert WEBHOOK_RECORD.validate_json(record.model_dump_json()) == record


def test_state_public_shows_health_and_no_secret(
    make_webhook: Callable[..., WebhookState],
) -> None:
    """The API's view of a webhook carries its endpoint's health and never the secret."""
    health = WebhookHealth(last_error="404 Not Found", consecutive_failures=3, failing_since=LATER)
    public = make_webhook().public(health)
    assert (public.last_error, public.consecutive_failures) == ("404 Not Found", 3)
    assert public.failing_since == LATER
    assert "secret" not in public.model_dump()
    assert "enabled_at" not in public.model_dump()


def test_evolve_disabled_by_hookline_and_enabled_again() -> None:
    """`webhook.disabled` disables with its reason; enabling clears the reason, notes the time."""
    state = evolve(None, created(), 1)
    disabled = evolve(state, WebhookDisabled(at=LATER, webhook_id="wh_1", reason="410 Gone"), 2)
    assert disabled is not None
    assert (disabled.disabled, disabled.disabled_reason, disabled.revision) == (True, "410 Gone", 2)
    again = datetime(2024, 6, 1, tzinfo=UTC)
    enabled = evolve(
        disabled, WebhookUpdated(at=again, webhook_id="wh_1", changes={"disabled": False}), 3
    )
    assert enabled is not None
    assert (enabled.disabled, enabled.disabled_reason, enabled.enabled_at) == (False, None, again)
    still = evolve(
        enabled, WebhookUpdated(at=LATER, webhook_id="wh_1", changes={"disabled": False}), 4
    )
    assert still is not None
    assert still.enabled_at == again  # enabling an enabled webhook is no new start


# --- ids and secrets ----------------------------------------------------------------------------


def test_new_secret_is_whsec_and_base64_of_24_bytes() -> None:
    """A secret is `whsec_` followed by the base64 of 24 random bytes."""
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    assert new_secret() != secret


def test_new_webhook_ids_are_unique() -> None:
    """Every new webhook id is different and starts with `wh_`."""
    ids = {new_webhook_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(webhook_id.startswith("wh_") for webhook_id in ids)
