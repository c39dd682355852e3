// The dashboard: one more client of the API. Every call carries the signed-in user's token.
import { beginSignIn, currentSession, finishSignIn, forgetSession, signOut } from "./auth.js";
import { bothZones, instantToWallTime, viewerZone, wallTimeToInstant, zones } from "./times.js";

const base = document.querySelector('meta[name="api-base"]').content;
const $ = (id) => document.getElementById(id);
// API field name -> the form control that edits it.
const FIELDS = {
  title: "f-title", starts_at: "f-starts-at", timezone: "f-timezone", recipients: "f-recipients",
  reminders: "f-reminders", recurrence: "f-recurrence", description: "f-description",
};
const REPEATS = {
  "RRULE:FREQ=DAILY": "Every day", "RRULE:FREQ=WEEKLY": "Every week",
  "RRULE:FREQ=MONTHLY": "Every month", "RRULE:FREQ=YEARLY": "Every year",
};

let config = null;
let session = null;
let editing = null; // the event being changed, or null when the form creates
let events = new Map();
let expiryTimer = null;

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  if (!currentSession()) {
    showSignedOut("Your session ended; sign in again.");
    throw new ApiError(401, { message: "signed out" });
  }
  const reply = await fetch(base + path.replace(/^\//, ""), {
    method,
    headers: {
      Authorization: `Bearer ${session.token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = reply.status === 204 ? null : await reply.json().catch(() => null);
  if (reply.status === 401) {
    showSignedOut("Your session ended; sign in again.");
  }
  if (!reply.ok) throw new ApiError(reply.status, data);
  return data;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function say(text) {
  $("status").textContent = text;
}

function timeCell(instant, zone) {
  if (!instant) return el("td", {}, "—");
  const { there, here } = bothZones(instant, zone);
  return el("td", {}, el("time", { datetime: instant }, there), here ? el("span", { class: "here" }, here) : null);
}

// --- signing in and out ---------------------------------------------------------------------

function showSignedOut(message) {
  forgetSession();
  session = null;
  clearTimeout(expiryTimer);
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  $("session").replaceChildren();
  say(message || "Signed out.");
}

function showSignedIn() {
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  const out = el("button", { type: "button", class: "secondary", id: "sign-out" }, "Sign out");
  out.addEventListener("click", () => {
    signOut(config);
    showSignedOut("Signed out.");
  });
  $("session").replaceChildren(el("span", {}, "Signed in as ", el("strong", {}, session.email)), " ", out);
  // The token is dropped when it expires, not kept a moment longer.
  clearTimeout(expiryTimer);
  expiryTimer = setTimeout(() => showSignedOut("Your session ended; sign in again."), session.expires - Date.now());
}

// --- the form -------------------------------------------------------------------------------

function clearErrors() {
  $("form-error").hidden = true;
  for (const id of Object.values(FIELDS)) {
    $(`${id}-error`).hidden = true;
    $(`${id}-error`).textContent = "";
    $(id).removeAttribute("aria-invalid");
  }
}

function showFieldError(field, message) {
  const id = FIELDS[field];
  if (!id) return false;
  const error = $(`${id}-error`);
  error.textContent = error.hidden ? message : `${error.textContent} ${message}`;
  error.hidden = false;
  $(id).setAttribute("aria-invalid", "true");
  return true;
}

// The API's 422: each message beside the field it concerns (loc is ["body", field, ...]).
let submitted = {}; // what the form sent last, to name the item a message is about

function itemName(field, index) {
  const item = (submitted[field] || [])[index];
  if (item === undefined) return "";
  return `${typeof item === "object" ? Object.values(item).join(" ") : item}: `;
}

function showValidation(body) {
  const detail = (body && body.detail) || [];
  let first = null;
  const unplaced = [];
  for (const item of detail) {
    const loc = item.loc || [];
    const field = loc[0] === "body" ? loc[1] : loc[1] || loc[0];
    const message = String(item.msg || "").replace(/^Value error, /, "");
    const which = typeof loc[2] === "number" ? itemName(field, loc[2]) : "";
    item.msg = which + message.charAt(0).toUpperCase() + message.slice(1);
    if (showFieldError(field, item.msg)) first = first || FIELDS[field];
    else unplaced.push(item.msg);
  }
  if (!detail.length || unplaced.length) {
    $("form-error").textContent = unplaced.join(" ") || (body && body.message) || "The event was not saved.";
    $("form-error").hidden = false;
  }
  if (first) $(first).focus();
}

function readForm() {
  const zone = $("f-timezone").value.trim() || "UTC";
  let startsAt;
  try {
    startsAt = wallTimeToInstant($("f-starts-at").value, zone);
  } catch {
    startsAt = wallTimeToInstant($("f-starts-at").value, "UTC"); // an unknown zone: the API says so
  }
  const recipients = $("f-recipients").value.split(/[\s,;]+/).filter(Boolean);
  const reminders = $("f-reminders").value.split(/[\s,]+/).filter(Boolean)
    .map((m) => ({ minutes_before: /^\d+$/.test(m) ? Number(m) : m }));
  const event = {
    title: $("f-title").value,
    starts_at: startsAt,
    timezone: zone,
    reminders,
    recurrence: $("f-recurrence").value ? [$("f-recurrence").value] : null,
    description: $("f-description").value || null,
  };
  if (recipients.length || editing) event.recipients = recipients;
  if (!startsAt) delete event.starts_at;
  if (editing) {
    // The series keeps its EXDATE/RDATE lines unless its rule was changed here.
    const rule = (editing.recurrence || []).find((line) => line.startsWith("RRULE:")) || "";
    if ($("f-recurrence").value === rule) event.recurrence = editing.recurrence || null;
    return changedFields(event, editing);
  }
  return event;
}

// A change sends only what differs (an event under way keeps its start: a past one would be refused).
function changedFields(event, original) {
  const changed = {};
  for (const [field, value] of Object.entries(event)) {
    if (field === "starts_at") {
      // Shown to the minute: unchanged when the field still holds what it was filled with.
      if ($("f-starts-at").value !== original.wall || event.timezone !== original.timezone) changed[field] = value;
    } else if (JSON.stringify(value) !== JSON.stringify(original[field] ?? null)) {
      changed[field] = value;
    }
  }
  return changed;
}

function localErrors(event) {
  let found = false;
  if (!$("f-starts-at").value) found = showFieldError("starts_at", "Enter the date and time it starts.") || found;
  return found;
}

async function submitForm(submit) {
  submit.preventDefault();
  clearErrors();
  const event = readForm();
  submitted = event;
  if (localErrors(event)) {
    $("f-starts-at").focus();
    return;
  }
  const button = $("submit");
  button.disabled = true;
  try {
    if (editing) {
      const changed = await api("PATCH", `/events/${editing.id}`, event);
      say(`Saved “${changed.title}”.`);
      await openEvent(changed.id);
    } else {
      if (event.recurrence === null) delete event.recurrence;
      const created = await api("POST", "/events", event);
      say(`Created “${created.title}”.`);
    }
    resetForm();
    await refresh();
  } catch (error) {
    if (error.status === 422 || error.status === 400) showValidation(error.body);
    else if (error.status !== 401) {
      $("form-error").textContent = `Not saved: ${error.message}`;
      $("form-error").hidden = false;
    }
  } finally {
    button.disabled = false;
  }
}

function resetForm() {
  editing = null;
  $("event-form").reset();
  $("f-timezone").value = viewerZone;
  $("form-heading").textContent = "New event";
  $("submit").textContent = "Create event";
  $("cancel-edit").hidden = true;
  clearErrors();
}

function editEvent(event) {
  editing = { ...event };
  event = editing;
  clearErrors();
  $("form-heading").textContent = `Change “${event.title}”`;
  $("submit").textContent = "Save changes";
  $("cancel-edit").hidden = false;
  $("f-title").value = event.title;
  $("f-timezone").value = event.timezone;
  editing.wall = instantToWallTime(event.starts_at, event.timezone);
  $("f-starts-at").value = editing.wall;
  $("f-recipients").value = event.recipients.join(", ");
  $("f-reminders").value = event.reminders.map((r) => r.minutes_before).join(", ");
  const rule = (event.recurrence || []).find((line) => line.startsWith("RRULE:")) || "";
  const select = $("f-recurrence");
  if (rule && !REPEATS[rule]) select.append(el("option", { value: rule }, rule));
  select.value = rule;
  $("f-description").value = event.description || "";
  $("f-title").focus();
}

// --- lists ----------------------------------------------------------------------------------

async function loadEvents() {
  const found = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: "100", ...(cursor ? { cursor } : {}) });
    const page = await api("GET", `/events?${query}`);
    found.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && found.length < 1000);
  return found;
}

function renderEvents(list) {
  events = new Map(list.map((e) => [e.id, e]));
  if (!list.length) {
    $("events").replaceChildren(el("p", {}, "No events yet. Create one above."));
    return;
  }
  const rows = list.map((event) => el("tr", { "data-event-id": event.id },
    el("th", { scope: "row" }, el("button", {
      type: "button", class: "link", onclick: () => openEvent(event.id),
      "aria-label": `${event.title}: delivery log`,
    }, event.title)),
    timeCell(event.starts_at, event.timezone),
    el("td", {}, event.recipients.join(", ")),
    el("td", {}, event.reminders.map((r) => `${r.minutes_before} min`).join(", ") || "none"),
    el("td", {}, (event.recurrence || []).map((l) => REPEATS[l] || l).join("; ") || "Once"),
  ));
  $("events").replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, ...["Title", "Starts", "Recipients", "Reminders", "Repeats"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows)));
}

async function renderAgenda() {
  const page = await api("GET", "/agenda?limit=100");
  if (!page.items.length) {
    $("agenda").replaceChildren(el("p", {}, "Nothing in the next 30 days."));
    return;
  }
  $("agenda").replaceChildren(el("ol", { class: "agenda" }, page.items.map((item) => {
    const zone = (events.get(item.event_id) || {}).timezone || "UTC";
    const { there, here } = bothZones(item.starts_at, zone);
    return el("li", {},
      el("time", { datetime: item.starts_at }, there), here ? el("span", { class: "here" }, here) : null, " ",
      el("button", { type: "button", class: "link", onclick: () => openEvent(item.event_id) }, item.title));
  })));
}

async function renderSuppressions() {
  if (!config.hasSuppressions) return;
  const page = await api("GET", "/suppressions");
  $("suppressions-section").hidden = false;
  if (!page.items.length) {
    $("suppressions").replaceChildren(el("p", {}, "None: your reminders reach every recipient."));
    return;
  }
  $("suppressions").replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, ...["Address", "Why", "Since", ""].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, page.items.map((s) => el("tr", {},
      el("td", {}, s.email), el("td", {}, s.reason), timeCell(s.since, viewerZone),
      el("td", {}, s.reason === "unsubscribe" ? el("button", {
        type: "button", class: "secondary",
        onclick: async () => { await api("DELETE", `/suppressions/${encodeURIComponent(s.email)}`); await renderSuppressions(); },
      }, `Resume reminders to ${s.email}`) : null))))));
}

async function refresh() {
  renderEvents(await loadEvents());
  await renderAgenda();
  await renderSuppressions();
}

// --- one event: its delivery log --------------------------------------------------------------

function logTable(items, zone) {
  if (!items.length) return el("p", {}, "No deliveries planned.");
  const withFeedback = items.some((n) => n.feedback);
  const heads = ["Recipient", "Occurrence", "Reminder", "Due", "Status", "Attempts", "Sent", "Last error"];
  if (withFeedback) heads.push("Feedback");
  return el("table", { class: "log" },
    el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, items.map((n) => el("tr", {},
      el("td", {}, n.recipient),
      timeCell(n.occurrence_at, zone),
      el("td", {}, `${n.minutes_before} min before`),
      timeCell(n.due_at, zone),
      el("td", {}, el("span", { class: `badge ${n.status}` }, n.status)),
      el("td", {}, String(n.attempts)),
      timeCell(n.sent_at, zone),
      el("td", { class: "last-error" }, n.last_error || "—"),
      withFeedback ? el("td", {}, n.feedback || "—") : null))));
}

async function openEvent(id, { deleted = null } = {}) {
  const event = deleted || events.get(id) || await api("GET", `/events/${id}`).catch(() => null);
  const log = await api("GET", `/events/${id}/notifications`);
  const zone = event ? event.timezone : viewerZone;
  const title = event ? event.title : id;
  const body = [];
  if (deleted) body.push(el("p", { class: "notice" }, "This event was deleted; its pending reminders were cancelled. Its delivery log stays here."));
  if (event) {
    const { there, here } = bothZones(event.starts_at, event.timezone);
    body.push(el("p", {}, "Starts ", el("time", { datetime: event.starts_at }, there), here ? ` · ${here}` : ""));
  }
  if (event && !deleted) {
    body.push(el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary", onclick: () => editEvent(event) }, `Change “${event.title}”`),
      el("button", { type: "button", class: "danger", onclick: () => deleteEvent(event) }, `Delete “${event.title}”`),
      el("button", { type: "button", class: "secondary", onclick: () => openEvent(id) }, "Refresh the log")));
  }
  body.push(logTable(log.items, zone));
  $("detail-heading").textContent = `Delivery log: ${title}`;
  $("detail-body").replaceChildren(...body);
  $("detail").hidden = false;
  $("detail").focus();
}

async function deleteEvent(event) {
  if (!confirm(`Delete “${event.title}”? Its pending reminders are cancelled.`)) return;
  await api("DELETE", `/events/${event.id}`);
  say(`Deleted “${event.title}”.`);
  if (editing && editing.id === event.id) resetForm();
  await refresh();
  await openEvent(event.id, { deleted: event });
}

// --- start ----------------------------------------------------------------------------------

async function start() {
  config = await (await fetch(`${base}dashboard/config.json`)).json();
  // Suppressions arrived with v1.1's delivery feedback; the page shows them when the API has them.
  const document_ = await (await fetch(`${base}openapi.json`)).json().catch(() => ({ paths: {} }));
  config.hasSuppressions = Boolean(document_.paths && document_.paths["/suppressions"]);
  if (!config.authorize_url || !config.client_id) {
    // JwtIssuer names an outside issuer: the template cannot know its sign-in endpoints.
    $("sign-in").disabled = true;
    $("signed-out").append(el("p", { class: "error" }, "Sign-in is not configured for this deployment: use the API with a token from your issuer."));
  }
  $("sign-in").addEventListener("click", () => beginSignIn(config));
  $("event-form").addEventListener("submit", submitForm);
  $("cancel-edit").addEventListener("click", resetForm);
  $("zones").replaceChildren(...zones().map((zone) => el("option", { value: zone })));
  resetForm();
  try {
    session = (await finishSignIn(config)) || currentSession();
  } catch (error) {
    showSignedOut(error.message);
    return;
  }
  if (!session) {
    showSignedOut("Not signed in.");
    return;
  }
  showSignedIn();
  say("Loading your events…");
  await refresh();
  say(`${events.size} event${events.size === 1 ? "" : "s"}.`);
}

start().catch((error) => say(`Something went wrong: ${error.message}`));
