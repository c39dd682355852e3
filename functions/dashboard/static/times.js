// Times in a named zone and the viewer's, with the platform's Intl (no library).

export const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

export function zones() {
  return typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : ["UTC"];
}

export function formatIn(instant, zone) {
  try {
    return new Intl.DateTimeFormat(undefined, {
      weekday: "short", year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", timeZone: zone, timeZoneName: "short",
    }).format(new Date(instant));
  } catch {
    return new Date(instant).toISOString();
  }
}

// "<in the event's zone> (Europe/Berlin)" and, when the viewer is elsewhere, "<yours> your time".
export function bothZones(instant, zone) {
  const there = `${formatIn(instant, zone)} (${zone})`;
  if (zone === viewerZone) return { there, here: null };
  return { there, here: `${formatIn(instant, viewerZone)} your time` };
}

function partsIn(epochMs, zone) {
  const parts = {};
  for (const { type, value } of new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(epochMs))) parts[type] = value;
  return Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
}

// A wall time ("2026-12-01T09:00" from <input type=datetime-local>) in `zone` as an RFC 3339 UTC
// instant. A time in a gap (spring forward) lands after it; an ambiguous one on its first instant.
export function wallTimeToInstant(wall, zone) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(wall || "");
  if (!match) return null;
  const [, y, mo, d, h, mi, s] = match;
  const asUtc = Date.UTC(+y, +mo - 1, +d, +h, +mi, +(s || 0));
  let guess = asUtc;
  for (let i = 0; i < 3; i += 1) guess = asUtc - (partsIn(guess, zone) - guess);
  const earlier = guess - 3600_000;
  if (partsIn(earlier, zone) === asUtc) guess = earlier;
  return new Date(guess).toISOString().replace(/\.000Z$/, "Z");
}

// The inverse, for editing: an instant as the wall time <input type=datetime-local> shows in `zone`.
export function instantToWallTime(instant, zone) {
  const wall = partsIn(new Date(instant).getTime(), zone);
  return new Date(wall).toISOString().slice(0, 16);
}
