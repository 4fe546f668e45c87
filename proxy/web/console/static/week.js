// The week view: a consumer key and addresses in, a days x hours grid of /v1/availability out.
// The key stays in this tab (sessionStorage) and travels only as a bearer header. A link may
// prefill it in its fragment (#key=...), which browsers never send to a server; it is read
// once and removed from the address bar.
"use strict";

(() => {
  const KEY_STORE = "freebusy-proxy.consumer-key";
  const MAX_SCHEDULES = 8;
  const DAY_MS = 86400000;
  const LANE_TAGS = "ABCDEFGH";
  const STATUS_LABELS = {
    busy: "Busy",
    tentative: "Tentative",
    oof: "Out of office",
    workingElsewhere: "Working elsewhere",
    unknown: "Unknown",
    free: "Free",
  };

  const $ = (id) => document.getElementById(id);
  const form = $("query");
  const keyInput = $("consumer-key");
  const schedulesInput = $("schedules");
  const weekInput = $("week-of");
  const zoneSelect = $("time-zone");
  const statusLine = $("view-status");
  const errorLine = $("view-error");
  const legend = $("legend");
  const grid = $("week");

  function node(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined) element.textContent = text;
    return element;
  }

  // --- Time zones: wall-clock parts of an instant, and the instant of a local midnight ------
  const formatters = new Map();

  function formatter(zone) {
    let found = formatters.get(zone);
    if (!found) {
      found = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
      });
      formatters.set(zone, found);
    }
    return found;
  }

  function wall(zone, ms) {
    const parts = {};
    for (const part of formatter(zone).formatToParts(new Date(ms))) parts[part.type] = part.value;
    return {
      y: Number(parts.year),
      m: Number(parts.month),
      d: Number(parts.day),
      h: Number(parts.hour) % 24,
      mi: Number(parts.minute),
      s: Number(parts.second),
    };
  }

  function offset(zone, ms) {
    const w = wall(zone, ms);
    return Date.UTC(w.y, w.m - 1, w.d, w.h, w.mi, w.s) - (ms - (ms % 1000));
  }

  // The first instant of local day y-m-d in zone (two passes settle a DST change).
  function localMidnight(zone, y, m, d) {
    const target = Date.UTC(y, m - 1, d);
    let instant = target - offset(zone, target);
    instant = target - offset(zone, instant);
    const w = wall(zone, instant);
    if (Date.UTC(w.y, w.m - 1, w.d) < target) instant += 3600000; // midnight fell in a gap
    return instant;
  }

  function minutesOfDay(zone, ms) {
    const w = wall(zone, ms);
    return w.h * 60 + w.mi + w.s / 60;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function clock(zone, ms) {
    const w = wall(zone, ms);
    return `${pad(w.h)}:${pad(w.mi)}`;
  }

  function isoDate(y, m, d) {
    return `${y}-${pad(m)}-${pad(d)}`;
  }

  function today(zone) {
    const w = wall(zone, Date.now());
    return isoDate(w.y, w.m, w.d);
  }

  function rfc3339(ms) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  // Monday to Sunday of the week holding the date, as calendar days and 8 boundary instants.
  function weekOf(dateText, zone) {
    const [y, m, d] = dateText.split("-").map(Number);
    const picked = Date.UTC(y, m - 1, d);
    const monday = picked - ((new Date(picked).getUTCDay() + 6) % 7) * DAY_MS;
    const days = [];
    for (let i = 0; i <= 7; i += 1) {
      const day = new Date(monday + i * DAY_MS);
      const parts = [day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate()];
      days.push({ date: isoDate(...parts), noon: Date.UTC(parts[0], parts[1] - 1, parts[2], 12), start: localMidnight(zone, ...parts) });
    }
    return days;
  }

  // --- Talking to the API ---------------------------------------------------------------
  async function ask(path, key, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    let doc = null;
    try {
      doc = await response.json();
    } catch {
      doc = null;
    }
    return { status: response.status, ok: response.ok, doc, retryAfter: response.headers.get("Retry-After") };
  }

  function problemText(answer) {
    if (answer.status === 401) return "This consumer key is not valid.";
    if (answer.status === 429) {
      return `This key is over its rate limit; try again in ${answer.retryAfter || "a few"} seconds.`;
    }
    const detail = answer.doc && typeof answer.doc.detail === "string" ? answer.doc.detail : "";
    return detail ? `The proxy refused: ${detail}.` : `The proxy answered ${answer.status}.`;
  }

  function code(answer) {
    return answer.doc && typeof answer.doc.code === "string" ? answer.doc.code : "";
  }

  // Per-person lanes from /v1/availability, or one lane of common free time from /v1/slots
  // for a slots-only key (which may not see anyone's own calendar).
  async function fetchLanes(key, schedules, start, end) {
    const window = { start: rfc3339(start), end: rfc3339(end) };
    const answer = await ask("/v1/availability", key, { schedules, ...window });
    if (answer.ok) {
      return {
        answer,
        lanes: answer.doc.schedules.map((entry) => ({
          label: entry.schedule,
          items: entry.items,
          error: entry.error ? entry.error.code : null,
          stale: entry.stale,
        })),
      };
    }
    if (answer.status !== 403 || code(answer) !== "slots_only") return { answer, lanes: null };
    const slots = await ask("/v1/slots", key, {
      participants: schedules.map((schedule) => ({ schedule })),
      required: "all",
      duration_minutes: 30,
      format: "periods",
      ...window,
    });
    if (!slots.ok) return { answer: slots, lanes: null };
    const errors = (slots.doc.errors || []).map((e) => `${e.schedule}: ${e.code}`);
    return {
      answer: slots,
      slotsOnly: true,
      truncated: Boolean(slots.doc.truncated),
      lanes: [
        {
          label: "Everyone free (this key sees common free time only)",
          items: slots.doc.slots.map((slot) => ({ status: "free", start: slot.start, end: slot.end })),
          error: errors.length ? errors.join(", ") : null,
          stale: false,
        },
      ],
    };
  }

  // --- Drawing ----------------------------------------------------------------------------
  function drawLegend(lanes, note) {
    legend.replaceChildren();
    lanes.forEach((lane, i) => {
      const person = node("span", "person");
      person.append(node("span", "lane-tag", LANE_TAGS[i]), lane.label);
      if (lane.error) person.append(" ", node("span", "problem", `(${lane.error})`));
      if (lane.stale) person.append(" ", node("span", "muted", "(stale)"));
      legend.append(person);
    });
    const seen = new Set(lanes.flatMap((lane) => lane.items.map((item) => item.status)));
    for (const status of Object.keys(STATUS_LABELS)) {
      if (!seen.has(status)) continue;
      const entry = node("span", "status-key");
      entry.append(node("span", `swatch status-${status}`), STATUS_LABELS[status]);
      legend.append(entry);
    }
    if (note) legend.append(node("span", "muted", note));
  }

  function place(element, top, height, left, width) {
    // CSSOM, not style attributes: the page's CSP allows no inline styles.
    element.style.top = `${top}%`;
    element.style.height = `${height}%`;
    element.style.left = `calc(${left}% + 1px)`;
    element.style.width = `calc(${width}% - 2px)`;
  }

  function drawWeek(days, lanes, zone, from) {
    grid.replaceChildren();
    grid.append(node("div", "corner"));
    const dayName = new Intl.DateTimeFormat(undefined, { timeZone: "UTC", weekday: "short", day: "numeric", month: "short" });
    const todayDate = today(zone);
    for (let i = 0; i < 7; i += 1) {
      const head = node("div", `day-head${days[i].date === todayDate ? " today" : ""}`);
      head.append(node("strong", "", dayName.format(new Date(days[i].noon))));
      const tags = node("div", "lanes-head");
      lanes.forEach((_, lane) => tags.append(node("span", "", LANE_TAGS[lane])));
      head.append(tags);
      grid.append(head);
    }
    const hours = node("div", "hours");
    for (let h = 1; h < 24; h += 1) {
      const label = node("span", "", `${pad(h)}:00`);
      label.style.top = `${(h / 24) * 100}%`;
      hours.append(label);
    }
    grid.append(hours);
    const now = Date.now();
    const width = 100 / lanes.length;
    for (let i = 0; i < 7; i += 1) {
      const dayStart = days[i].start;
      const dayEnd = days[i + 1].start;
      const column = node("div", "day");
      column.dataset.date = days[i].date;
      if (from > dayStart) {
        const past = node("div", "past");
        past.title = "Before now: not asked for";
        past.style.height = from >= dayEnd ? "100%" : `${(minutesOfDay(zone, from) / 1440) * 100}%`;
        column.append(past);
      }
      if (now >= dayStart && now < dayEnd) {
        const line = node("div", "now");
        line.style.top = `${(minutesOfDay(zone, now) / 1440) * 100}%`;
        column.append(line);
      }
      lanes.forEach((lane, laneIndex) => {
        lane.items.forEach((item, itemIndex) => {
          const start = Date.parse(item.start);
          const end = Date.parse(item.end);
          const segStart = Math.max(start, dayStart);
          const segEnd = Math.min(end, dayEnd);
          if (segEnd <= segStart) return;
          const top = segStart === dayStart ? 0 : minutesOfDay(zone, segStart);
          let bottom = segEnd === dayEnd ? 1440 : minutesOfDay(zone, segEnd);
          if (bottom <= top) bottom = Math.min(1440, top + (segEnd - segStart) / 60000); // a repeated hour
          const block = node("div", `block status-${item.status}`);
          block.dataset.lane = String(laneIndex);
          block.dataset.item = String(itemIndex);
          block.dataset.status = item.status;
          const words = `${lane.label}: ${STATUS_LABELS[item.status] || item.status}, ${clock(zone, start)}–${clock(zone, end)}`;
          block.title = words;
          block.setAttribute("role", "img");
          block.setAttribute("aria-label", words);
          place(block, (top / 1440) * 100, ((bottom - top) / 1440) * 100, laneIndex * width, width);
          column.append(block);
        });
      });
      grid.append(column);
    }
    grid.hidden = false;
  }

  // --- The form ---------------------------------------------------------------------------
  function schedulesOf(text) {
    const unique = new Map();
    for (const address of text.split(/[\s,;]+/)) {
      if (address && !unique.has(address.toLowerCase())) unique.set(address.toLowerCase(), address);
    }
    return [...unique.values()];
  }

  function fail(text) {
    errorLine.textContent = text;
    errorLine.hidden = false;
    statusLine.textContent = "";
    grid.hidden = true;
    legend.replaceChildren();
  }

  // Only the latest question is drawn: an earlier answer arriving late is dropped.
  let latest = 0;

  async function show() {
    const mine = ++latest;
    errorLine.hidden = true;
    const key = keyInput.value.trim();
    const schedules = schedulesOf(schedulesInput.value);
    if (!key || schedules.length === 0) return fail("Enter a consumer key and at least one address.");
    if (schedules.length > MAX_SCHEDULES) return fail(`The week view shows at most ${MAX_SCHEDULES} addresses.`);
    sessionStorage.setItem(KEY_STORE, key);
    const zone = zoneSelect.value;
    if (!weekInput.value) weekInput.value = today(zone);
    const days = weekOf(weekInput.value, zone);
    const end = days[7].start;
    let from = days[0].start;
    statusLine.textContent = "Asking the proxy…";
    let result = await fetchLanes(key, schedules, from, end);
    if (mine !== latest) return undefined;
    if (result.answer.status === 400 && code(result.answer) === "window_too_early") {
      // The key may not look back: ask for what is left of the week.
      const now = Math.floor(Date.now() / 60000) * 60000;
      if (now >= end) return fail("This week is over, and this key may not look into the past.");
      from = Math.max(from, now);
      result = await fetchLanes(key, schedules, from, end);
      if (mine !== latest) return undefined;
    }
    if (!result.lanes) return fail(problemText(result.answer));
    const note = result.truncated ? "More free periods than shown (truncated)." : "";
    drawLegend(result.lanes, note);
    drawWeek(days, result.lanes, zone, from);
    const shown = result.lanes.reduce((n, lane) => n + lane.items.length, 0);
    statusLine.textContent = `Week of ${days[0].date} in ${zone}: ${shown} ${result.slotsOnly ? "free periods" : "items"}.`;
    return undefined;
  }

  function shiftWeek(days) {
    const [y, m, d] = (weekInput.value || today(zoneSelect.value)).split("-").map(Number);
    const moved = new Date(Date.UTC(y, m - 1, d) + days * DAY_MS);
    weekInput.value = isoDate(moved.getUTCFullYear(), moved.getUTCMonth() + 1, moved.getUTCDate());
    show();
  }

  function fillZones(chosen) {
    const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    const all = [...new Set(["UTC", chosen, ...zones])].sort();
    zoneSelect.replaceChildren(...all.map((zone) => node("option", "", zone)));
    zoneSelect.value = chosen;
  }

  function prefill() {
    // A link such as /view#key=...&schedules=a@x,b@x (the demo prints one) fills the form.
    const given = new URLSearchParams(window.location.hash.slice(1));
    if (window.location.hash) history.replaceState(null, "", window.location.pathname + window.location.search);
    return given;
  }

  function knownZone(zone) {
    try {
      formatter(zone);
      return true;
    } catch {
      return false;
    }
  }

  const given = prefill();
  const resolved = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  fillZones(knownZone(given.get("zone") || "") ? given.get("zone") : resolved);
  keyInput.value = given.get("key") || sessionStorage.getItem(KEY_STORE) || "";
  schedulesInput.value = (given.get("schedules") || "").split(",").filter(Boolean).join(", ");
  weekInput.value = /^\d{4}-\d{2}-\d{2}$/.test(given.get("week") || "") ? given.get("week") : today(zoneSelect.value);
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show();
  });
  zoneSelect.addEventListener("change", () => show());
  $("previous").addEventListener("click", () => shiftWeek(-7));
  $("next").addEventListener("click", () => shiftWeek(7));
  if (keyInput.value && schedulesInput.value) show();
})();
