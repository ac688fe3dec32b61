"""The example catalog the repository ships (catalog/examples/): the seed products' events, with
schemas that hold what their pages say."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.runtime.catalog import EventCatalog
from services.runtime.catalog_files import load_catalog
from tests.support.catalog import EXAMPLE_CATALOG, PROJECTRAK_UPDATED, RECORD_APPROVAL

# Xurrent's events, as its webhooks page lists them.
XURRENT = [
    "automation_rule",
    "broadcast.create",
    "broadcast.update",
    "workflow.create",
    "workflow.manager-changed",
    "workflow.note-added",
    "workflow.status-changed",
    "workflow.update",
    "ci.create",
    "ci.update",
    "contract.create",
    "contract.update",
    "flsa.create",
    "flsa.update",
    "knowledge_article.create",
    "knowledge_article.update",
    "organization.create",
    "organization.update",
    "out_of_office_period.create",
    "out_of_office_period.update",
    "out_of_office_period.delete",
    "person.create",
    "person.update",
    "problem.create",
    "problem.manager-changed",
    "problem.member-changed",
    "problem.note-added",
    "problem.status-changed",
    "problem.team-changed",
    "problem.update",
    "product.create",
    "product.update",
    "project.create",
    "project.manager-changed",
    "project.note-added",
    "project.status-changed",
    "project.update",
    "project_task.create",
    "project_task.note-added",
    "project_task.status-changed",
    "project_task.update",
    "release.create",
    "release.manager-changed",
    "release.note-added",
    "release.update",
    "request.agile-board-column-changed",
    "request.create",
    "request.major-incident-status-changed",
    "request.member-changed",
    "request.note-added",
    "request.status-changed",
    "request.team-changed",
    "request.update",
    "risk.create",
    "risk.update",
    "risk.note-added",
    "risk.status-changed",
    "risk.manager-changed",
    "service.create",
    "service.update",
    "service_instance.create",
    "service_instance.update",
    "service_offering.create",
    "service_offering.update",
    "sla.create",
    "sla.update",
    "task.create",
    "task.member-changed",
    "task.note-added",
    "task.status-changed",
    "task.team-changed",
    "task.update",
    "team.create",
    "team.update",
    "time_entry.create",
    "time_entry.update",
    "time_entry.delete",
]
KETRYX = [
    "recordApproval",
    "releaseApproval",
    "milestoneApproval",
    "documentApproval",
    "testPlanApproval",
    "vulnerabilityApproval",
]
KEYCLIC = [
    "reportCreated",
    "reportStateChanged",
    "operationCreated",
    "operationStateChanged",
    "operationRemoved",
]
# Keyclic's example notification's payload, from its page.
REPORT: dict[str, Any] = {
    "type": "Report",
    "id": "b0e7e28f-5b91-4c73-875e-8f34aa03553a",
    "state": "NEW",
    "createdAt": "2018-02-27T10:00:00+02:00",
    "updatedAt": "2018-02-27T10:00:00+02:00",
    "_links": {"feedback": "...", "operations": "...", "organization": "...", "tracking": "..."},
    "_embedded": {"stateTransitions": "...", "tracking": ".."},
}


@pytest.fixture(scope="module")
def catalog() -> EventCatalog:
    return EventCatalog(load_catalog(EXAMPLE_CATALOG))


def problems(catalog: EventCatalog, event_type: str, data: dict[str, Any]) -> list[str]:
    return [str(problem) for problem in catalog.problems(event_type, data)]


def test_every_products_events_are_cataloged(catalog: EventCatalog) -> None:
    by_product: dict[str, list[str]] = {}
    for cataloged in catalog:
        by_product.setdefault(cataloged.product, []).append(cataloged.type)
    assert sorted(by_product["ketryx"]) == sorted(KETRYX)
    assert sorted(by_product["keyclic"]) == sorted(KEYCLIC)
    assert sorted(by_product["xurrent"]) == sorted(XURRENT)
    assert by_product["projectrak"] == ["projectrak.project.updated"]
    assert len(XURRENT) == len(set(XURRENT)) == 77
    assert set(by_product) == {"ketryx", "keyclic", "projectrak", "xurrent"}


def test_each_type_has_an_object_schema_and_a_description(catalog: EventCatalog) -> None:
    for cataloged in catalog:
        assert cataloged.schema["type"] == "object", cataloged.type
        assert cataloged.description.strip(), cataloged.type
        for example in cataloged.examples:
            assert cataloged.problems(example) == [], cataloged.type


def test_a_ketryx_approval_holds_its_fields_with_their_types(catalog: EventCatalog) -> None:
    assert problems(catalog, "recordApproval", RECORD_APPROVAL) == []
    assert problems(catalog, "recordApproval", {**RECORD_APPROVAL, "newRecordId": None}) == []
    partial = {key: value for key, value in RECORD_APPROVAL.items() if key != "newRecordId"}
    assert problems(catalog, "vulnerabilityApproval", partial) == []
    wrong = {**RECORD_APPROVAL, "isControlled": "true", "userId": "kxrec-1", "isControled": True}
    del wrong["recordId"]
    assert problems(catalog, "documentApproval", wrong) == [
        "data.userId: 'kxrec-1' does not match '^KX[A-Z0-9]{8,62}$'",
        "data.isControlled: 'true' is not of type 'boolean'",
        "data: 'recordId' is a required property",
        "data: Additional properties are not allowed ('isControled' was unexpected)",
    ]


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("releaseApproval", {"versionId": "KXVER1", "isReleased": True}),
        ("milestoneApproval", {"milestoneId": "KXMIL1", "isFullyApproved": False}),
        ("testPlanApproval", {"versionId": "KXVER1", "testPlanId": "KXTPL1"}),
    ],
)
def test_every_ketryx_approval_names_its_user(
    catalog: EventCatalog, event_type: str, data: dict[str, Any]
) -> None:
    """Each approval is made by a user; every id is a Ketryx ID."""
    with_ids = {
        key: (value + "A" * 20 if key.endswith("Id") else value) for key, value in data.items()
    }
    user = {"userId": "KXUSRFBQY0GKGNHBSV46F7R8YXJEN0C"}
    assert problems(catalog, event_type, {**user, **with_ids}) == []
    assert problems(catalog, event_type, with_ids) == ["data: 'userId' is a required property"]
    assert problems(catalog, event_type, {**user, **data}) != []  # ids too short


def test_projectraks_page_example_passes_and_a_number_for_a_value_does_not(
    catalog: EventCatalog,
) -> None:
    event_type = "projectrak.project.updated"
    assert problems(catalog, event_type, PROJECTRAK_UPDATED) == []
    wrong = copy.deepcopy(PROJECTRAK_UPDATED)
    wrong["data"]["fields"][0]["value"]["current"] = 23
    wrong["data"]["timestamp"] = "2023-01-31"
    assert problems(catalog, event_type, wrong) == [
        "data.data.timestamp: '2023-01-31' is not of type 'integer'",
        "data.data.fields[0].value.current: 23 is not of type 'string', 'null'",
    ]
    assert problems(catalog, event_type, PROJECTRAK_UPDATED["data"]) != []  # not unwrapped


def test_keyclics_page_example_passes_as_a_report_not_as_an_operation(
    catalog: EventCatalog,
) -> None:
    assert problems(catalog, "reportCreated", REPORT) == []
    assert problems(catalog, "reportStateChanged", {**REPORT, "state": "ACCEPTED"}) == []
    assert problems(catalog, "operationCreated", REPORT) == ["data.type: 'Operation' was expected"]
    assert problems(catalog, "reportCreated", {**REPORT, "id": "42"}) != []
    assert problems(catalog, "reportCreated", {**REPORT, "createdAt": "yesterday"}) != []
    assert problems(catalog, "operationRemoved", {"type": "Operation", "id": REPORT["id"]}) == []


def test_xurrent_data_is_open_but_its_shared_fields_are_typed(catalog: EventCatalog) -> None:
    assert problems(catalog, "request.update", {"id": 70453, "subject": "Printer on fire"}) == []
    assert problems(catalog, "automation_rule", {"anything": ["at", "all"]}) == []
    assert problems(catalog, "request.status-changed", {"id": "70453", "status": "Done!"}) == [
        "data.id: '70453' is not of type 'integer'",
        "data.status: 'Done!' does not match '^[a-z][a-z0-9_]*$'",
    ]
    assert problems(catalog, "request.team-changed", {"team": {"name": "Ops"}}) == [
        "data.team: 'id' is a required property"
    ]
    assert problems(catalog, "request.team-changed", {"team": None}) == []
    # A note comes as its text (as Xurrent's API takes one) or as the note record.
    assert problems(catalog, "request.note-added", {"note": "Replaced the battery"}) == []
    assert problems(catalog, "task.note-added", {"note": {"id": 1, "text": "ok"}}) == []
    assert problems(catalog, "task.note-added", {"note": {"id": "1"}}) == [
        "data.note.id: '1' is not of type 'integer'"
    ]
    assert problems(catalog, "task.note-added", {"note": 42}) == [
        "data.note: 42 is not of type 'string', 'object'"
    ]
