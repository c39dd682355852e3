"""The dashboard and the local inbox in Chromium, as a new user meets them after `make run`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.browser.conftest import run_notifier, screenshot
from tests.e2e.runtime import LocalRuntime

EVENT_ZONE = "Europe/Berlin"


def wall_time(minutes_from_now: float, zone: str = EVENT_ZONE) -> str:
    """What <input type=datetime-local> holds for an instant that many minutes ahead, in ``zone``."""
    instant = datetime.now(UTC) + timedelta(minutes=minutes_from_now)
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


def sign_in(page: Any, product: LocalRuntime, email: str) -> None:
    page.goto(f"{product.api}/")
    page.get_by_role("button", name="Sign in").click()
    # The local issuer's sign-in page asks for an email, and nothing else.
    page.get_by_label("Email").fill(email)
    screenshot(page, "01-sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {email}").wait_for()


def tab_to(page: Any, element_id: str) -> None:
    """Press Tab until the element has focus (a date input's segments and picker take a few)."""
    for _ in range(12):
        if page.evaluate("document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def test_sign_in_create_see_it_delete_it_and_still_read_its_delivery_log(page: Any, product: LocalRuntime) -> None:
    # Given a signed-in user (no token typed anywhere)
    sign_in(page, product, "ana@example.com")
    assert page.evaluate("Object.keys(localStorage)") == []
    screenshot(page, "02-signed-in")

    # When they fill the form with an address that is not one
    page.get_by_label("Title").fill("Team sync")
    page.get_by_label("Starts at").fill(wall_time(10))
    page.get_by_label("Time zone").fill(EVENT_ZONE)
    page.get_by_label("Recipients").fill("ana@example.com, not-an-address")
    # one reminder due already (goes out on the next run), one still to come
    page.get_by_label("Reminders").fill("15, 5")
    page.get_by_label("Repeats").select_option(label="Does not repeat")
    page.get_by_role("button", name="Create event").click()

    # Then the API's 422 message stands beside the Recipients field, tied to it for screen readers
    error = page.locator("#f-recipients-error")
    error.wait_for()
    assert error.inner_text().startswith("not-an-address: ") and "valid email address" in error.inner_text()
    assert page.get_by_label("Recipients").get_attribute("aria-invalid") == "true"
    assert "f-recipients-error" in (page.get_by_label("Recipients").get_attribute("aria-describedby") or "")
    screenshot(page, "03-validation-message")

    # When the address is corrected, the event is created and shows in the list and the agenda
    page.get_by_label("Recipients").fill("ana@example.com")
    page.get_by_role("button", name="Create event").click()
    page.get_by_role("status").filter(has_text="Created “Team sync”").wait_for()
    assert error.is_hidden()
    row = page.locator("#events tbody tr").filter(has_text="Team sync")
    row.wait_for()
    # in the event's zone and in the viewer's (the browser runs in New York)
    assert "(Europe/Berlin)" in row.inner_text() and "your time" in row.inner_text()
    page.locator("#agenda li").filter(has_text="Team sync").wait_for()
    screenshot(page, "04-list-and-agenda")

    # When the notifier has run, the delivery log shows what went out
    # (this run, or the runtime's own every-minute schedule if it came first)
    run_notifier(product)
    page.get_by_role("button", name="Team sync: delivery log").click()
    log = page.locator("#detail")
    log.get_by_role("heading", name="Delivery log: Team sync").wait_for()
    rows = log.locator("table.log tbody tr")
    sent = rows.filter(has_text="15 min before").filter(has_text="sent")
    for _ in range(30):
        if sent.count():
            break
        page.wait_for_timeout(1000)
        log.get_by_role("button", name="Refresh the log").click()
    assert rows.count() == 2
    assert rows.filter(has_text="15 min before").filter(has_text="sent").count() == 1
    assert rows.filter(has_text="5 min before").filter(has_text="pending").count() == 1
    assert [h.strip() for h in log.locator("thead th").all_inner_texts()][:8] == [
        "Recipient",
        "Occurrence",
        "Reminder",
        "Due",
        "Status",
        "Attempts",
        "Sent",
        "Last error",
    ]
    screenshot(page, "05-delivery-log")

    # When they delete it (and confirm), it leaves the list, and its log stays readable: cancelled
    page.once("dialog", lambda dialog: dialog.accept())
    log.get_by_role("button", name="Delete “Team sync”").click()
    page.get_by_text("This event was deleted").wait_for()
    assert rows.filter(has_text="5 min before").filter(has_text="cancelled").count() == 1
    assert rows.filter(has_text="15 min before").filter(has_text="sent").count() == 1
    assert page.locator("#events tbody tr").filter(has_text="Team sync").count() == 0
    screenshot(page, "06-deleted-event-log")

    # And signing out drops the token
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.includes('token'))") == []
    screenshot(page, "07-signed-out")
    assert page.console.unexpected() == []


def test_the_create_flow_works_from_the_keyboard_alone(page: Any, product: LocalRuntime) -> None:
    page.goto(f"{product.api}/")
    page.get_by_role("button", name="Sign in").wait_for()
    # Given only the keyboard: Tab to "Sign in", Enter, type the email, Enter
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.get_by_label("Email").wait_for()
    page.keyboard.type("kim@example.com")
    page.keyboard.press("Enter")
    page.get_by_text("Signed in as kim@example.com").wait_for()
    # When they Tab into the form and type each field
    starts = datetime.strptime(wall_time(24 * 60, "America/New_York"), "%Y-%m-%dT%H:%M")
    tab_to(page, "f-title")
    page.keyboard.type("Dentist")
    tab_to(page, "f-starts-at")  # month, day, year, then the time's segments
    page.keyboard.type(starts.strftime("%m%d%Y"))
    page.keyboard.press("Tab")
    page.keyboard.type(starts.strftime("%I%M%p"))
    tab_to(page, "f-recipients")  # past Time zone: the viewer's is filled in
    page.keyboard.type("kim@example.com")
    tab_to(page, "f-reminders")
    page.keyboard.press("Control+a")
    page.keyboard.type("60")
    page.keyboard.press("Enter")  # submits the form
    # Then the event exists, at the time typed, in the viewer's zone
    screenshot(page, "08-keyboard-submitted")
    page.get_by_role("status").filter(has_text="Created “Dentist”").wait_for()
    row = page.locator("#events tbody tr").filter(has_text="Dentist")
    assert "(America/New_York)" in row.inner_text()
    assert starts.strftime("%I:%M").lstrip("0") in row.inner_text()
    screenshot(page, "08-keyboard-created")
    # And changing it (title only) keeps the rest
    row.get_by_role("button").press("Enter")
    page.locator("#detail").get_by_role("button", name="Change “Dentist”").press("Enter")
    assert page.evaluate("document.activeElement.id") == "f-title"
    page.keyboard.press("Control+a")
    page.keyboard.type("Dentist, moved")
    with page.expect_request(lambda r: r.method == "PATCH") as patch:
        page.keyboard.press("Enter")
    assert patch.value.post_data_json == {"title": "Dentist, moved"}  # only what changed
    page.get_by_role("status").filter(has_text="Saved “Dentist, moved”").wait_for()
    moved = page.locator("#events tbody tr").filter(has_text="Dentist, moved")
    assert starts.strftime("%I:%M").lstrip("0") in moved.inner_text()
    assert page.get_by_role("button", name="Create event").is_visible()
    assert page.console.unexpected() == []


def test_the_local_inbox_shows_each_email_as_a_person_reads_it(page: Any, product: LocalRuntime) -> None:
    # Given a reminder that went out
    sign_in(page, product, "lea@example.com")
    page.get_by_label("Title").fill("Inbox check")
    page.get_by_label("Starts at").fill(wall_time(3))
    page.get_by_label("Time zone").fill(EVENT_ZONE)
    page.get_by_label("Recipients").fill("lea@example.com")
    page.get_by_role("button", name="Create event").click()
    page.get_by_role("status").filter(has_text="Created “Inbox check”").wait_for()
    run_notifier(product)

    # When they open the inbox, the newest email is first (once this run or the schedule sent it)
    page.goto(f"{product.api}/_local/inbox")
    first = page.locator("tbody tr").first
    for _ in range(30):
        if first.count() and "Inbox check" in first.inner_text():
            break
        page.wait_for_timeout(1000)
        page.reload()
    assert "Inbox check" in first.inner_text() and "lea@example.com" in first.inner_text()
    screenshot(page, "09-inbox")

    # and opened, it shows its headers, both bodies, its .ics and its links
    first.get_by_role("link").click()
    page.get_by_role("heading", name="Headers").wait_for()
    headers = page.locator("table.headers").inner_text()
    assert "Subject" in headers and "Inbox check" in headers
    assert page.locator("pre.text-body").inner_text().count("Inbox check") >= 1
    frame = page.frame_locator("iframe.html-body")
    assert "Inbox check" in frame.locator("body").inner_text()
    attachment = page.get_by_role("link", name=re.compile(r"\.ics$"))
    # a download (Content-Disposition: attachment) of the calendar entry itself
    reply = page.request.get(f"{product.api}{attachment.get_attribute('href')}")
    assert reply.ok and reply.headers["content-type"].startswith("text/calendar")
    assert reply.headers["content-disposition"] == 'attachment; filename="event.ics"'
    assert b"BEGIN:VCALENDAR" in reply.body()
    for link in page.locator("ul.links a").all():
        href = link.get_attribute("href") or ""
        assert page.request.get(href).status < 500, href
    screenshot(page, "10-email")

    # and its unsubscribe link works as the recipient meets it: a page, a button, a confirmation
    unsubscribe = page.locator("ul.links a[href*='/unsubscribe/']").first
    page.goto(unsubscribe.get_attribute("href") or "")
    assert "lea@example.com" in page.locator("body").inner_text()
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="Unsubscribed").wait_for()
    screenshot(page, "11-unsubscribed")
    assert page.console.unexpected() == []


def test_swagger_ui_authorizes_with_a_bearer_token_and_calls_the_api(page: Any, product: LocalRuntime) -> None:
    # Given Swagger UI and a token from the local issuer (what `make token` prints)
    token = product.mint_token("swagger@example.com")
    page.goto(f"{product.api}/swagger")
    # When the token is entered through Authorize
    page.locator("button.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.get_by_text("bearerAuth").first.wait_for()
    dialog.locator("input").first.fill(token)
    dialog.locator("button[type=submit]").click()  # "Authorize" (its accessible name: "Apply credentials")
    screenshot(page, "11-swagger-authorized")
    dialog.locator("button.btn-done").click()
    # and GET /events is tried out
    operation = page.locator(".opblock-get").filter(has=page.locator('[data-path="/events"]'))
    operation.locator(".opblock-summary").first.click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    # Then the API answered 200 to the request Swagger UI sent, token included
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert f"Authorization: Bearer {token}" in operation.locator(".curl-command").inner_text()
    screenshot(page, "12-swagger-try-it-out")


def test_an_expired_token_is_dropped_not_kept(page: Any, product: LocalRuntime) -> None:
    # Given a signed-in tab whose token has expired
    sign_in(page, product, "old@example.com")
    page.evaluate(
        """() => { const s = JSON.parse(sessionStorage.getItem("reminders.token"));
                   s.expires = Date.now() - 1000; sessionStorage.setItem("reminders.token", JSON.stringify(s)); }"""
    )
    # When the page is opened again, then it asks to sign in and the token is gone from storage
    page.reload()
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.evaluate("sessionStorage.getItem('reminders.token')") is None
    assert page.evaluate("Object.keys(localStorage)") == []
    assert page.console.unexpected() == []
