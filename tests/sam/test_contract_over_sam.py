"""Every route of CONTRACT.md, over HTTP, through a Docker-backed runtime (`sam local start-api` and
SAM's Lambda containers, or LocalStack's API Gateway and Lambda): API Gateway emulation, the TOKEN
authorizer, the built layer, PostgreSQL over the Docker network. Users and tokens: test_tenancy_over_http.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.sam.conftest import ContractApi as SamApi


def future(minutes: float = 120) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def create(sam_api: SamApi, **overrides: Any) -> dict[str, Any]:
    body = {"title": "Team sync", "starts_at": future(), "recipients": ["ana@example.com"], **overrides}
    response = sam_api.call("POST", "/events", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_create_then_read_returns_the_same_event(sam_api: SamApi) -> None:
    # Given a new event with two reminders
    body = {
        "title": "  Dentist ",
        "starts_at": "2031-03-04T10:00:00+02:00",
        "timezone": "Europe/Berlin",
        "recipients": ["ana@example.com", "bo@example.com"],
        "reminders": [{"minutes_before": 5}, {"minutes_before": 1440}],
    }
    # When it is created and read back
    created = sam_api.call("POST", "/events", json=body)
    # Then the API answers 201 with a Location and the event in UTC
    assert created.status_code == 201, created.text
    event = created.json()
    assert created.headers["Location"] == f"/events/{event['id']}"
    assert event["title"] == "Dentist"
    assert event["starts_at"] == "2031-03-04T08:00:00Z"
    read = sam_api.call("GET", f"/events/{event['id']}")
    assert read.status_code == 200
    assert read.json() == event


def test_list_walks_every_page_once(sam_api: SamApi) -> None:
    # Given three events in a window of their own
    base = datetime(2032, 1, 1, tzinfo=UTC) + timedelta(minutes=uuid.uuid4().int % 100_000)
    ids = {create(sam_api, starts_at=(base + timedelta(minutes=i)).isoformat())["id"] for i in range(3)}
    window = {
        "starts_after": (base - timedelta(seconds=1)).isoformat(),
        "starts_before": (base + timedelta(hours=1)).isoformat(),
    }
    # When the list is walked two at a time
    seen: list[str] = []
    params: dict[str, Any] = {**window, "limit": 2}
    while True:
        page = sam_api.call("GET", "/events", params=params)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        if not page.json()["next_cursor"]:
            break
        params = {**window, "limit": 2, "cursor": page.json()["next_cursor"]}
    # Then every event comes back exactly once
    assert sorted(seen) == sorted(ids)


def test_patch_changes_fields_and_replans_notifications(sam_api: SamApi) -> None:
    # Given an event with one recipient
    event = create(sam_api)
    # When its title and recipients change
    changed = sam_api.call("PATCH", f"/events/{event['id']}", json={"title": "Moved", "recipients": ["cy@example.com"]})
    # Then the event and its pending notifications follow
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Moved"
    notifications = sam_api.call("GET", f"/events/{event['id']}/notifications")
    assert notifications.status_code == 200
    pending = [n for n in notifications.json()["items"] if n["status"] == "pending"]
    assert [n["recipient"] for n in pending] == ["cy@example.com"]


def test_delete_answers_204_and_the_event_is_gone(sam_api: SamApi) -> None:
    event = create(sam_api)
    deleted = sam_api.call("DELETE", f"/events/{event['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert sam_api.call("GET", f"/events/{event['id']}").status_code == 404


def test_unknown_and_malformed_ids_are_404(sam_api: SamApi) -> None:
    for event_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = sam_api.call("GET", f"/events/{event_id}")
        assert response.status_code == 404, response.text
        assert response.json()["statusCode"] == 404


def test_bad_input_is_4xx_with_the_error_shape(sam_api: SamApi) -> None:
    # Given a naive start time, and a body that is not JSON
    naive = sam_api.call(
        "POST", "/events", json={"title": "x", "starts_at": "2031-01-01T10:00:00", "recipients": ["a@example.com"]}
    )
    garbage = sam_api.call("POST", "/events", data=b"{not json", headers={"Content-Type": "application/json"})
    # Then both are refused with a clear 4xx, never a 5xx
    assert naive.status_code == 422
    assert naive.json()["statusCode"] == 422
    assert garbage.status_code in (400, 422)
    assert sam_api.call("GET", "/events", params={"limit": 0}).status_code == 422


def test_openapi_and_swagger_need_no_token(sam_api: SamApi) -> None:
    document = sam_api.call("GET", "/openapi.json", auth=False)
    assert document.status_code == 200
    assert "/events/{event_id}" in document.json()["paths"]
    swagger = sam_api.call("GET", "/swagger", auth=False)
    assert swagger.status_code == 200
    assert "swagger" in swagger.text.lower()
