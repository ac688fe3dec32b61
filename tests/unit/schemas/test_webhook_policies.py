"""Webhook policies: the API's models, the records of their changes and the fold over them; and
webhooks naming them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.webhook_policies import (
    ALG_NOT_PATCHABLE,
    DEFAULT_EXPIRES_IN_S,
    JWT_ALGS,
    MAX_EXPIRES_IN_S,
    MIN_EXPIRES_IN_S,
    PolicyState,
    WebhookPolicyCreate,
    WebhookPolicyCreated,
    WebhookPolicyDeleted,
    WebhookPolicyPatch,
    WebhookPolicyUpdated,
    evolve_policy,
    jws_algorithm,
    new_policy_id,
)
from schemas.webhooks import WebhookCreate, WebhookCreated, WebhookPatch, WebhookUpdated, evolve
from schemas.webhooks_stream import STREAM_RECORD

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = AT + timedelta(minutes=5)
PEM = "-----BEGIN PRIVATE KEY-----\nMIIsecretbytes\n-----END PRIVATE KEY-----\n"


def error_of(error: ValidationError) -> list[tuple[tuple[int | str, ...], str]]:
    return [(tuple(problem["loc"]), problem["msg"]) for problem in error.errors()]


def created(**fields: Any) -> WebhookPolicyCreated:
    values: dict[str, Any] = {
        "at": AT,
        "policy_id": "pol_1",
        "name": "signed",
        "jwt_alg": "rs256",
        "jwt_claim_expires_in": 60,
        "signing_key": PEM,
    }
    values.update(fields)
    return WebhookPolicyCreated(**values)


# --- WebhookPolicyCreate --------------------------------------------------------------------


def test_create_needs_a_name_and_an_alg_and_defaults_the_rest() -> None:
    """Only `name` and `jwt_alg` are required; a token lives a minute unless told otherwise."""
    body = WebhookPolicyCreate.model_validate({"name": "p", "jwt_alg": "es256"})
    assert (body.disabled, body.jwt_audience, body.jwt_claim_expires_in) == (
        False,
        None,
        DEFAULT_EXPIRES_IN_S,
    )
    with pytest.raises(ValidationError) as caught:
        WebhookPolicyCreate.model_validate({})
    assert sorted(loc for loc, _ in error_of(caught.value)) == [("jwt_alg",), ("name",)]


@pytest.mark.parametrize("alg", JWT_ALGS)
def test_create_takes_every_alg_of_xurrent(alg: str) -> None:
    assert WebhookPolicyCreate.model_validate({"name": "p", "jwt_alg": alg}).jwt_alg == alg


@pytest.mark.parametrize("alg", ["RS256", "ps256", "hs1", "", "eddsa", None, 256])
def test_create_refuses_any_other_alg(alg: object) -> None:
    """Lower case as Xurrent writes them; PS256, EdDSA and the like are not offered."""
    with pytest.raises(ValidationError) as caught:
        WebhookPolicyCreate.model_validate({"name": "p", "jwt_alg": alg})
    assert [loc for loc, _ in error_of(caught.value)] == [("jwt_alg",)]


@pytest.mark.parametrize(
    "expires_in",
    [MIN_EXPIRES_IN_S - 1, MAX_EXPIRES_IN_S + 1, 0, -60, "60", 60.5, True, None],
)
def test_create_bounds_the_lifetime_of_tokens(expires_in: object) -> None:
    """Whole seconds, from 10 s to a day: no string, float or boolean stands in for one."""
    with pytest.raises(ValidationError) as caught:
        WebhookPolicyCreate.model_validate(
            {"name": "p", "jwt_alg": "hs256", "jwt_claim_expires_in": expires_in}
        )
    assert [loc for loc, _ in error_of(caught.value)] == [("jwt_claim_expires_in",)]


@pytest.mark.parametrize("expires_in", [MIN_EXPIRES_IN_S, 300, MAX_EXPIRES_IN_S])
def test_create_takes_lifetimes_within_the_bounds(expires_in: int) -> None:
    body = {"name": "p", "jwt_alg": "hs256", "jwt_claim_expires_in": expires_in}
    assert WebhookPolicyCreate.model_validate(body).jwt_claim_expires_in == expires_in


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 256),
        ("jwt_audience", ""),
        ("jwt_audience", "a" * 1025),
        ("disabled", "yes"),
        ("public_key", "-----BEGIN PUBLIC KEY-----"),
        ("signing_key", PEM),
    ],
)
def test_create_names_the_wrong_field(field: str, value: object) -> None:
    """Empty or long strings, a non-boolean, and fields that are not the caller's to give."""
    with pytest.raises(ValidationError) as caught:
        WebhookPolicyCreate.model_validate({"name": "p", "jwt_alg": "rs256", field: value})
    assert [loc for loc, _ in error_of(caught.value)] == [(field,)]


# --- WebhookPolicyPatch ---------------------------------------------------------------------


def test_patch_changes_only_what_was_sent_and_null_clears_the_audience() -> None:
    patch = WebhookPolicyPatch.model_validate({"disabled": True, "jwt_audience": None})
    assert patch.changes() == {"disabled": True, "jwt_audience": None}
    assert WebhookPolicyPatch.model_validate({}).changes() == {}


@pytest.mark.parametrize("alg", ["rs256", "hs256", None, "nonsense"])
def test_patch_refuses_jwt_alg_by_name_saying_why(alg: object) -> None:
    """The key was made for the algorithm: the 400 says a new policy is the way, not that the
    field is unknown."""
    with pytest.raises(ValidationError) as caught:
        WebhookPolicyPatch.model_validate({"jwt_alg": alg, "name": "renamed"})
    [(loc, message)] = error_of(caught.value)
    assert loc == ("jwt_alg",)
    assert ALG_NOT_PATCHABLE in message
    assert "create a policy" in message


@pytest.mark.parametrize("field", ["name", "disabled", "jwt_claim_expires_in"])
def test_patch_refuses_null_where_a_value_is_due(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookPolicyPatch.model_validate({field: None})
    assert error_of(caught.value) == [((field,), "Value error, cannot be null")]


def test_patch_schema_does_not_offer_jwt_alg() -> None:
    """The OpenAPI document shows what a patch may change: jwt_alg is not among it."""
    schema = WebhookPolicyPatch.model_json_schema()
    assert set(schema["properties"]) == {
        "name",
        "disabled",
        "jwt_audience",
        "jwt_claim_expires_in",
    }
    assert schema["additionalProperties"] is False


# --- records and the fold -------------------------------------------------------------------


def test_a_create_makes_a_policy_and_its_view_hides_the_key() -> None:
    state = evolve_policy(None, created(jwt_audience="https://example.com"), 7)
    assert state is not None
    assert (state.id, state.jwt_alg, state.signing_key, state.revision) == (
        "pol_1",
        "rs256",
        PEM,
        7,
    )
    shown = state.public().model_dump(mode="json")
    assert shown == {
        "id": "pol_1",
        "name": "signed",
        "disabled": False,
        "jwt_alg": "rs256",
        "jwt_audience": "https://example.com",
        "jwt_claim_expires_in": 60,
        "created_at": "2024-05-01T12:00:00Z",
        "updated_at": "2024-05-01T12:00:00Z",
    }
    assert "MIIsecretbytes" not in repr(state)
    assert "MIIsecretbytes" not in repr(created())


def test_updates_change_the_mutable_fields_only() -> None:
    """An update changes what a patch may change; a key or an alg in its changes is ignored."""
    state = evolve_policy(None, created(), 0)
    changes = {
        "disabled": True,
        "jwt_audience": "aud",
        "jwt_claim_expires_in": 120,
        "jwt_alg": "none",
        "signing_key": None,
        "id": "pol_2",
    }
    after = evolve_policy(
        state, WebhookPolicyUpdated(at=LATER, policy_id="pol_1", changes=changes), 3
    )
    assert after is not None
    assert (after.disabled, after.jwt_audience, after.jwt_claim_expires_in) == (True, "aud", 120)
    assert (after.id, after.jwt_alg, after.signing_key) == ("pol_1", "rs256", PEM)
    assert (after.created_at, after.updated_at, after.revision) == (AT, LATER, 3)
    cleared = evolve_policy(
        after, WebhookPolicyUpdated(at=LATER, policy_id="pol_1", changes={"jwt_audience": None}), 4
    )
    assert cleared is not None
    assert cleared.jwt_audience is None


def test_a_delete_ends_the_policy_and_a_replayed_create_changes_nothing() -> None:
    state = evolve_policy(None, created(), 0)
    renamed = evolve_policy(
        state, WebhookPolicyUpdated(at=LATER, policy_id="pol_1", changes={"name": "n2"}), 1
    )
    assert evolve_policy(renamed, created(), 2) is renamed
    assert evolve_policy(renamed, WebhookPolicyDeleted(at=LATER, policy_id="pol_1"), 3) is None
    update = WebhookPolicyUpdated(at=LATER, policy_id="pol_1", changes={"name": "n3"})
    assert evolve_policy(None, update, 4) is None


def test_the_stream_reads_policy_and_webhook_records_alike() -> None:
    """One adapter reads every record of the webhooks stream, each as what it is."""
    records = [
        created(),
        WebhookPolicyUpdated(at=AT, policy_id="pol_1", changes={"disabled": True}),
        WebhookPolicyDeleted(at=AT, policy_id="pol_1"),
        WebhookCreated(
            at=AT,
            webhook_id="wh_1",
            name="n",
            event="a.b",
            uri="https://example.com",
            secret="whsec_x",
            webhook_policy="pol_1",
        ),
    ]
    for record in records:
        assert STREAM_RECORD.validate_json(record.model_dump_json()) == record


@pytest.mark.parametrize(
    ("alg", "header"),
    [("none", "none"), ("hs384", "HS384"), ("rs512", "RS512"), ("es256", "ES256")],
)
def test_jws_algorithm_names(alg: Any, header: str) -> None:
    assert jws_algorithm(alg) == header


def test_policy_ids_are_fresh() -> None:
    first, second = new_policy_id(), new_policy_id()
    assert first.startswith("pol_")
    assert first != second


def test_policy_state_is_slotted() -> None:
    """Every router and sender holds one per policy: no per-instance dict."""
    assert not hasattr(evolve_policy(None, created(), 0), "__dict__")
    assert PolicyState.__slots__


# --- webhooks naming a policy ---------------------------------------------------------------


def test_a_webhook_names_a_policy_at_create_and_patch_and_null_clears_it() -> None:
    body = WebhookCreate.model_validate(
        {"event": "a.b", "uri": "https://example.com", "webhook_policy": "pol_1"}
    )
    assert body.webhook_policy == "pol_1"
    record = WebhookCreated(
        at=AT,
        webhook_id="wh_1",
        name="a.b",
        event="a.b",
        uri=body.uri,
        secret="whsec_x",
        webhook_policy=body.webhook_policy,
    )
    state = evolve(None, record, 0)
    assert state is not None
    assert state.webhook_policy == "pol_1"
    assert state.public().webhook_policy == "pol_1"
    patch = WebhookPatch.model_validate({"webhook_policy": None})
    assert patch.changes() == {"webhook_policy": None}
    cleared = evolve(state, WebhookUpdated(at=LATER, webhook_id="wh_1", changes=patch.changes()), 1)
    assert cleared is not None
    assert cleared.webhook_policy is None
    other = WebhookPatch.model_validate({"webhook_policy": "pol_2"}).changes()
    moved = evolve(cleared, WebhookUpdated(at=LATER, webhook_id="wh_1", changes=other), 2)
    assert moved is not None
    assert moved.webhook_policy == "pol_2"


@pytest.mark.parametrize("value", ["", 7, True, "p" * 65])
def test_a_webhook_policy_reference_is_a_short_string(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookCreate.model_validate(
            {"event": "a.b", "uri": "https://example.com", "webhook_policy": value}
        )
    assert [loc for loc, _ in error_of(caught.value)] == [("webhook_policy",)]
