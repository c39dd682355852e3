"""Every route of CONTRACT.md through ApiFunction's lambda_handler, with API Gateway REST proxy
events as SAM generates them, against a real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from reminders.db import session_scope
from reminders.models import Notification
from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function


@pytest.fixture
def api(engine: Engine) -> Any:
    handler = load_function("api").lambda_handler

    def call(method: str, path: str, **kwargs: Any) -> ApiResponse:
        return ApiResponse(handler(rest_event(method, path, **kwargs), FakeLambdaContext()))

    return call


def future(minutes: float = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def new_event(**overrides: Any) -> dict[str, Any]:
    return {"title": "Team sync", "starts_at": future(), "recipients": ["ana@example.com"], **overrides}


def create(api: Any, **overrides: Any) -> dict[str, Any]:
    response = api("POST", "/events", body=new_event(**overrides))
    assert response.status == 201, response
    return response.json()


def notification_rows(engine: Engine, event_id: str) -> list[tuple[str, int, str, datetime]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(Notification.recipient, Notification.minutes_before, Notification.status, Notification.due_at)
            .where(Notification.event_id == uuid.UUID(event_id))
            .order_by(Notification.recipient, Notification.minutes_before)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


# --- POST /events -----------------------------------------------------------------------


def test_create_returns_201_location_and_the_event_in_utc(api: Any, engine: Engine) -> None:
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    response = api(
        "POST",
        "/events",
        body=new_event(
            starts_at=starts.astimezone(UTC).replace(tzinfo=None).isoformat() + "+00:00",
            description="Room 4",
            timezone="Europe/Berlin",
        ),
    )
    assert response.status == 201, response
    event = response.json()
    assert response.headers["location"] == f"/events/{event['id']}"
    assert event["starts_at"] == starts.isoformat().replace("+00:00", "Z")
    assert event["timezone"] == "Europe/Berlin"
    assert event["reminders"] == [{"minutes_before": 5}]
    assert event["description"] == "Room 4"
    assert event["created_at"].endswith("Z") and event["updated_at"].endswith("Z")


@pytest.mark.parametrize(
    "zone", ["Asia/Tokyo", "America/St_Johns", "Asia/Kathmandu", "Pacific/Kiritimati", "Etc/GMT+12"]
)
def test_create_accepts_any_offset_and_answers_in_utc(api: Any, zone: str) -> None:
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    local = starts.astimezone(ZoneInfo(zone)).isoformat()
    assert not local.endswith("+00:00")  # the request really carries another offset
    event = create(api, starts_at=local)
    assert event["starts_at"] == starts.isoformat().replace("+00:00", "Z")
    assert api("GET", f"/events/{event['id']}").json()["starts_at"] == event["starts_at"]


def test_create_plans_one_pending_notification_per_recipient_and_reminder(api: Any, engine: Engine) -> None:
    event = create(
        api,
        recipients=["a@example.com", "b@example.com"],
        reminders=[{"minutes_before": 5}, {"minutes_before": 60}],
    )
    rows = notification_rows(engine, event["id"])
    starts = datetime.fromisoformat(event["starts_at"])
    assert [(r, m, s) for r, m, s, _ in rows] == [
        ("a@example.com", 5, "pending"),
        ("a@example.com", 60, "pending"),
        ("b@example.com", 5, "pending"),
        ("b@example.com", 60, "pending"),
    ]
    assert all(due == starts - timedelta(minutes=m) for _, m, _, due in rows)


@pytest.mark.parametrize(
    "overrides",
    [
        {"starts_at": "2030-01-01T09:00:00"},
        {"starts_at": "2020-01-01T09:00:00Z"},
        {"recipients": ["nope"]},
        {"recipients": []},
        {"recipients": [f"u{i}@example.com" for i in range(51)]},
        {"title": "   "},
        {"title": ""},
        {"title": "x" * 1_000_000},
        {"title": 42},
        {"reminders": [{"minutes_before": m} for m in range(11)]},
        {"reminders": [{"minutes_before": 43_201}]},
        {"timezone": "Nowhere/City"},
        {"unknown": "field"},
    ],
)
def test_create_rejects_invalid_fields_with_422_and_stores_nothing(
    api: Any, engine: Engine, overrides: dict[str, Any]
) -> None:
    response = api("POST", "/events", body=new_event(**overrides))
    assert response.status == 422, response
    body = response.json()
    assert body["statusCode"] == 422 and body["message"]
    assert len(response.text) < 5_000  # the megabyte title is not echoed back
    assert api("GET", "/events").json()["items"] == []


@pytest.mark.parametrize(
    "raw_body",
    ["{not json", "[]", '["a", "b"]', "null", '"text"', "42", "", b"\x00\xff\xfe binary"],
)
def test_create_rejects_bodies_that_are_not_a_json_object(api: Any, raw_body: str | bytes) -> None:
    response = api("POST", "/events", raw_body=raw_body)
    assert response.status in (400, 422), response
    assert response.json()["statusCode"] == response.status


def test_past_start_says_why(api: Any) -> None:
    response = api("POST", "/events", body=new_event(starts_at="2020-01-01T09:00:00Z"))
    assert response.status == 422
    assert "future" in response.json()["message"]


# --- GET /events/{id} -------------------------------------------------------------------


def test_get_returns_the_event(api: Any) -> None:
    event = create(api)
    response = api("GET", f"/events/{event['id']}")
    assert response.status == 200
    assert response.json() == event


@pytest.mark.parametrize("event_id", [str(uuid.uuid4()), "not-a-uuid", "1", "%00", "' OR 1=1 --"])
def test_get_unknown_or_malformed_id_is_404(api: Any, event_id: str) -> None:
    response = api("GET", f"/events/{event_id}")
    assert response.status == 404, response
    assert response.json() == {"statusCode": 404, "message": "event not found"}


# --- GET /events ------------------------------------------------------------------------


def test_list_walks_every_event_exactly_once_in_start_order(api: Any) -> None:
    same_start = future(600)
    created = [create(api, title=f"e{i}", starts_at=same_start if i % 3 == 0 else future(60 + i)) for i in range(23)]
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        response = api("GET", "/events", query=query)
        assert response.status == 200, response
        page = response.json()
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert sorted(e["id"] for e in seen) == sorted(e["id"] for e in created)
    keys = [(e["starts_at"], e["id"]) for e in seen]
    assert keys == sorted(keys)


def test_list_filters_by_start_window_and_defaults_to_20(api: Any) -> None:
    early = [create(api, title="early", starts_at=future(30 + i)) for i in range(3)]
    late = [create(api, title="late", starts_at=future(600 + i)) for i in range(22)]
    window = api("GET", "/events", query={"starts_before": future(300)}).json()
    assert [e["id"] for e in window["items"]] == [e["id"] for e in early]
    after = api("GET", "/events", query={"starts_after": future(300)}).json()
    assert len(after["items"]) == 20 and after["next_cursor"]
    assert {e["id"] for e in after["items"]} <= {e["id"] for e in late}


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"starts_after": "yesterday"},
        {"starts_before": "2030-01-01T00:00:00"},
        {"cursor": "garbage"},
        {"cursor": "x" * 10_000},
    ],
)
def test_list_rejects_bad_parameters_with_422(api: Any, query: dict[str, str]) -> None:
    response = api("GET", "/events", query=query)
    assert response.status == 422, response
    assert response.json()["statusCode"] == 422


# --- PATCH /events/{id} -----------------------------------------------------------------


def test_patch_changes_only_the_given_fields(api: Any) -> None:
    event = create(api, description="old")
    response = api("PATCH", f"/events/{event['id']}", body={"title": "New title", "description": None})
    assert response.status == 200, response
    changed = response.json()
    assert changed["title"] == "New title" and changed["description"] is None
    assert changed["starts_at"] == event["starts_at"] and changed["recipients"] == event["recipients"]
    assert changed["updated_at"] >= event["updated_at"]
    assert api("GET", f"/events/{event['id']}").json() == changed


def test_patch_moving_start_replans_pending_notifications(api: Any, engine: Engine) -> None:
    event = create(api, reminders=[{"minutes_before": 5}])
    new_start = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    response = api("PATCH", f"/events/{event['id']}", body={"starts_at": new_start.isoformat()})
    assert response.status == 200
    [(_, _, status, due)] = notification_rows(engine, event["id"])
    assert status == "pending" and due == new_start - timedelta(minutes=5)


def test_patch_changing_recipients_and_reminders_cancels_the_dropped_ones(api: Any, engine: Engine) -> None:
    event = create(api, recipients=["a@example.com", "b@example.com"], reminders=[{"minutes_before": 5}])
    body = {
        "recipients": ["b@example.com", "c@example.com"],
        "reminders": [{"minutes_before": 5}, {"minutes_before": 10}],
    }
    assert api("PATCH", f"/events/{event['id']}", body=body).status == 200
    rows = {(r, m): s for r, m, s, _ in notification_rows(engine, event["id"])}
    assert rows == {
        ("a@example.com", 5): "cancelled",
        ("b@example.com", 5): "pending",
        ("b@example.com", 10): "pending",
        ("c@example.com", 5): "pending",
        ("c@example.com", 10): "pending",
    }
    # Re-adding a dropped recipient plans it again, on the same row.
    assert api("PATCH", f"/events/{event['id']}", body={"recipients": ["a@example.com"]}).status == 200
    rows = {(r, m): s for r, m, s, _ in notification_rows(engine, event["id"])}
    assert rows[("a@example.com", 5)] == "pending" and rows[("a@example.com", 10)] == "pending"
    assert len(rows) == 6


@pytest.mark.parametrize(
    "body",
    [
        {"starts_at": "2020-01-01T00:00:00Z"},
        {"title": None},
        {"recipients": []},
        {"owner": "x"},
        {"title": ""},
    ],
)
def test_patch_rejects_invalid_changes_and_keeps_the_event(api: Any, body: dict[str, Any]) -> None:
    event = create(api)
    response = api("PATCH", f"/events/{event['id']}", body=body)
    assert response.status == 422, response
    assert api("GET", f"/events/{event['id']}").json() == event


def test_patch_unknown_event_is_404(api: Any) -> None:
    assert api("PATCH", f"/events/{uuid.uuid4()}", body={"title": "x"}).status == 404
    assert api("PATCH", "/events/nope", body={"title": "x"}).status == 404


def test_patch_with_a_json_array_body_is_422(api: Any) -> None:
    event = create(api)
    assert api("PATCH", f"/events/{event['id']}", raw_body="[1,2]").status == 422


# --- DELETE /events/{id} ----------------------------------------------------------------


def test_delete_answers_204_then_404_and_cancels_pending_notifications(api: Any, engine: Engine) -> None:
    event = create(api, recipients=["a@example.com", "b@example.com"])
    response = api("DELETE", f"/events/{event['id']}")
    assert response.status == 204 and response.text == ""
    assert api("GET", f"/events/{event['id']}").status == 404
    assert api("DELETE", f"/events/{event['id']}").status == 404
    assert api("GET", f"/events/{event['id']}/notifications").status == 404
    assert {s for _, _, s, _ in notification_rows(engine, event["id"])} == {"cancelled"}
    assert api("GET", "/events").json()["items"] == []


def test_delete_unknown_event_is_404(api: Any) -> None:
    assert api("DELETE", f"/events/{uuid.uuid4()}").status == 404


# --- GET /events/{id}/notifications -----------------------------------------------------


def test_notifications_list_the_planned_deliveries(api: Any) -> None:
    event = create(api, recipients=["a@example.com"], reminders=[{"minutes_before": 5}, {"minutes_before": 30}])
    response = api("GET", f"/events/{event['id']}/notifications")
    assert response.status == 200
    items = response.json()["items"]
    assert [(n["recipient"], n["minutes_before"], n["status"], n["attempts"]) for n in items] == [
        ("a@example.com", 30, "pending", 0),
        ("a@example.com", 5, "pending", 0),
    ]
    assert set(items[0]) == {
        "id",
        "recipient",
        "minutes_before",
        "occurrence_at",
        "due_at",
        "status",
        "attempts",
        "sent_at",
        "message_id",
        "last_error",
        "feedback",
    }
    assert items[0]["feedback"] is None


# --- documents and unknown routes ---------------------------------------------------------


def test_openapi_document_lists_every_route_with_schemas(api: Any) -> None:
    response = api("GET", "/openapi.json")
    assert response.status == 200
    doc = json.loads(response.text)
    paths = doc["paths"]
    assert set(paths["/events"]) == {"get", "post"}
    assert set(paths["/events/{event_id}"]) == {"get", "patch", "delete"}
    assert set(paths["/events/{event_id}/notifications"]) == {"get"}
    post = paths["/events"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/EventCreate")
    assert post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/EventOut")
    assert "EventPage" in json.dumps(paths["/events"]["get"]["responses"]["200"])
    assert "EventUpdate" in json.dumps(paths["/events/{event_id}"]["patch"]["requestBody"])
    assert {"EventCreate", "EventOut", "EventUpdate", "EventPage", "NotificationList"} <= set(
        doc["components"]["schemas"]
    )


PROTECTED = [
    ("/events", "get"),
    ("/events", "post"),
    ("/events/{event_id}", "get"),
    ("/events/{event_id}", "patch"),
    ("/events/{event_id}", "delete"),
    ("/events/{event_id}/notifications", "get"),
    ("/events/{event_id}/occurrences", "get"),
    ("/agenda", "get"),
    ("/calendar/feed", "get"),
    ("/calendar/feed", "delete"),
]


def openapi(api: Any) -> dict[str, Any]:
    response = api("GET", "/openapi.json", as_user=None)
    assert response.status == 200, response
    return dict(json.loads(response.text))


def test_openapi_documents_every_error_the_service_answers(api: Any) -> None:
    paths = openapi(api)["paths"]
    for path, method in PROTECTED:
        responses = paths[path][method]["responses"]
        assert {"401", "422", "503"} <= set(responses), (path, method)
        for status in ("401", "422", "503"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ErrorOut"), (path, method, status)
    for path, method in [("/events", "post"), ("/events/{event_id}", "patch")]:
        assert {"400", "415"} <= set(paths[path][method]["responses"]), (path, method)
    assert "409" in paths["/events"]["post"]["responses"]
    assert {"idempotency-key"} == {
        p["name"].lower() for p in paths["/events"]["post"]["parameters"] if p["in"] == "header"
    }


def test_openapi_says_a_delete_has_no_body(api: Any) -> None:
    deleted = openapi(api)["paths"]["/events/{event_id}"]["delete"]["responses"]["204"]
    assert not deleted.get("content")


def test_openapi_patch_schema_refuses_null_where_the_service_does(api: Any) -> None:
    schema = openapi(api)["components"]["schemas"]["EventUpdate"]["properties"]
    event = create(api)
    for field, value in schema.items():
        allows_null = "null" in json.dumps(value)
        response = api("PATCH", f"/events/{event['id']}", body={field: None})
        assert (response.status == 200) == allows_null, (field, response)
    # null clears the description, and makes a recurring event a one-off again
    assert [f for f, v in schema.items() if "null" in json.dumps(v)] == ["description", "recurrence"]


def test_openapi_declares_bearer_auth_on_every_protected_route_and_none_on_the_documents(api: Any) -> None:
    doc = openapi(api)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An ID token from the issuer",
    }
    assert "security" not in doc
    for path, method in PROTECTED:
        assert doc["paths"][path][method]["security"] == [{"bearerAuth": []}], (path, method)
    assert "security" not in doc["paths"]["/openapi.json"]["get"]


def test_swagger_and_openapi_json_serve_the_same_document_and_servers(api: Any) -> None:
    # Through API Gateway's own URL (the stage in the path) and through a custom domain (no stage).
    for stage_in_path in (True, False):
        documents = []
        for path, query in (("/openapi.json", None), ("/swagger", {"format": "json"})):
            event = rest_event("GET", path, query=query, as_user=None)
            if not stage_in_path:
                event["requestContext"]["path"] = path
            response = ApiResponse(load_function("api").lambda_handler(event, FakeLambdaContext()))
            assert response.status == 200, response
            documents.append(json.loads(response.text))
        assert documents[0] == documents[1]
        assert documents[0]["servers"] == [{"url": "/prod" if stage_in_path else "/"}]


def test_swagger_ui_is_served(api: Any) -> None:
    response = api("GET", "/swagger")
    assert response.status == 200
    assert "swagger" in response.text.lower()


def test_unknown_route_is_a_json_404(api: Any) -> None:
    response = api("GET", "/nowhere")
    assert response.status == 404
    assert response.json()["statusCode"] == 404
