// Reports (supervisors and admins): per queue, agent or channel and hour or day,
// read from /api/v1/reports/*; a chart of contacts received / handled / abandoned /
// resolved by a bot and of the waits, the figures as a table, and links to the same rows
// as CSV. The days and hours are those of the hub's configured [reports] timezone.
// Also the service level today: one line per queue for the overview, and the SLA
// widget beside a conversation (the queue's targets and the share met today).

import "../vendor/chart.js/chart.umd.min.js"; // Chart.js 4 (MIT), vendored: sets globalThis.Chart
import { get, describeFailure } from "./api.js";
import { h, clear, button, field, select, duration } from "./util.js";
import { queueOf } from "./state.js";

const KINDS = [
  ["queues", "Queues", "queue"],
  ["agents", "Agents", "agent"],
  ["channels", "Channels", "channel"],
];
const COLUMNS = [
  ["received", "Received"],
  ["handled", "Handled"],
  ["abandoned", "Abandoned"],
  ["bot_resolved", "Bot resolved"],
  ["handed_off", "Handed off by bot"],
  ["missed_offers", "Missed offers"],
  ["transfers", "Transfers"],
  ["first_offer_p50_s", "First offer p50", "s"],
  ["wait_p50_s", "Wait p50", "s"],
  ["wait_p90_s", "Wait p90", "s"],
  ["first_response_p50_s", "First response p50", "s"],
  ["handle_p50_s", "Handling p50", "s"],
  ["sla_met_share", "SLA met", "%"],
];

let charts = [];

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

// Today's date in `zone` (an IANA name) as YYYY-MM-DD, or null when this browser does not know the zone.
function todayIn(zone) {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  } catch {
    return null;
  }
}

// The hub counts hours or days of its configured zone (docs/reports.md) and writes each bucket's start in that zone,
// with its offset ("2026-03-02T00:00:00+01:00"): the label is the date and time as written, never converted to the
// browser's zone (a day bucket would read as the evening before west of the hub's zone).
function bucketLabel(iso, bucket) {
  return bucket === "day" ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

function cell(value, unit) {
  if (value === null || value === undefined) return "–";
  if (unit === "s") return duration(value);
  if (unit === "%") return `${Math.round(value * 100)}%`;
  return String(value);
}

function keyLabel(item, key) {
  if (key === "agent") return item.agent_name || item.agent_login || `#${item.agent}`;
  return String(item[key]);
}

export function renderReports(main) {
  const today = new Date();
  const weekAgo = new Date(today.getTime() - 6 * 86400 * 1000);
  const kind = select(KINDS.map(([v, label]) => [v, label]), "queues", { "data-testid": "report-kind" });
  const from = h("input", { type: "date", value: isoDay(weekAgo), "data-testid": "report-from" });
  const to = h("input", { type: "date", value: isoDay(today), "data-testid": "report-to" });
  const bucket = select([["day", "Day"], ["hour", "Hour"]], "day", { "data-testid": "report-bucket" });
  const output = h("div", { class: "report-output", "aria-live": "polite" });
  const links = h("p", { class: "row" });
  const form = h("form", { class: "row report-form", onsubmit: (e) => { e.preventDefault(); load(); } },
    field("Report", kind), field("From", from), field("To (inclusive)", to), field("By", bucket),
    button("Show", null, { type: "submit", class: "primary" }));
  clear(main, h("section", { class: "panel" }, h("h1", {}, "Reports"), form, links, output));
  offerTheHubsDays();

  // The default week ends today in the zone the hub counts in ([reports] timezone, which the service-level route
  // names), not in UTC: east or west of it, UTC's date is the day before or after around midnight. Dates the
  // user changed meanwhile are kept.
  function offerTheHubsDays() {
    const defaults = [from.value, to.value];
    get("reports/sla").then((body) => {
      const today = body.tz ? todayIn(body.tz) : null;
      if (!today || from.value !== defaults[0] || to.value !== defaults[1]) return;
      to.value = today;
      from.value = isoDay(new Date(Date.parse(`${today}T00:00:00Z`) - 6 * 86400 * 1000));
    }).catch(() => {}); // the browser's days stay: a report still names its zone
  }

  // dates without a time or offset: the hub reads them as days of the zone it counts in
  function query() {
    const end = new Date(`${to.value}T00:00:00Z`);
    end.setUTCDate(end.getUTCDate() + 1);
    return `from=${from.value}&to=${isoDay(end)}&bucket=${bucket.value}`;
  }

  async function load() {
    const path = kind.value;
    const key = KINDS.find(([v]) => v === path)[2];
    const q = query();
    const by = bucket.value;
    clear(links,
      h("a", { href: `/api/v1/reports/${path}.csv?${q}`, download: `report-${path}.csv`, "data-testid": "report-csv" }, "Export CSV"));
    clear(output, h("p", { class: "muted" }, "Loading…"));
    let body;
    try {
      body = await get(`reports/${path}?${q}`);
    } catch (err) {
      clear(output, h("p", { class: "error-text" }, describeFailure(err)));
      return;
    }
    show(body.items || [], key, by, body.tz || "UTC");
  }

  function show(rows, key, by, zone) {
    for (const chart of charts) chart.destroy();
    charts = [];
    if (!rows.length) {
      clear(output, h("p", { class: "muted", "data-testid": "report-empty" }, "No contacts in this period."));
      return;
    }
    const volume = h("canvas", { "aria-label": "Contacts received, handled, abandoned and resolved by a bot", role: "img", "data-testid": "report-chart" });
    const waits = h("canvas", { "aria-label": "Wait until accepted, p50 and p90", role: "img" });
    const table = h("table", { class: "report-table", "data-testid": "report-table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, key[0].toUpperCase() + key.slice(1)), h("th", { scope: "col" }, `From (${zone})`),
        COLUMNS.map(([, label]) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, rows.map((r) => h("tr", { dataset: { key: String(r[key]) } },
        h("th", { scope: "row" }, keyLabel(r, key)),
        h("td", { dataset: { figure: "bucket_start" } }, bucketLabel(r.bucket_start, by)),
        COLUMNS.map(([name, , unit]) => h("td", { class: "num", dataset: { figure: name } }, cell(r[name], unit)))))));
    clear(output, h("div", { class: "report-charts" }, h("div", { class: "chart-box" }, volume), h("div", { class: "chart-box" }, waits)), table);
    draw(volume, waits, rows, key, by);
  }
}

function draw(volume, waits, rows, key, by) {
  const Chart = globalThis.Chart;
  if (!Chart) return; // the figures are in the table all the same
  // in time, not as text: the offsets of one zone differ across a change of clocks
  const buckets = [...new Set(rows.map((r) => r.bucket_start))].sort((a, b) => new Date(a) - new Date(b));
  const labels = buckets.map((b) => bucketLabel(b, by));
  const total = (name) => buckets.map((b) => rows.filter((r) => r.bucket_start === b).reduce((s, r) => s + (r[name] || 0), 0));
  const worst = (name) => buckets.map((b) => Math.max(0, ...rows.filter((r) => r.bucket_start === b).map((r) => r[name] ?? 0)));
  const common = { responsive: true, maintainAspectRatio: false, animation: false };
  charts.push(new Chart(volume, {
    type: "bar",
    data: { labels, datasets: [
      { label: "Received", data: total("received") },
      { label: "Handled", data: total("handled") },
      { label: "Abandoned", data: total("abandoned") },
      { label: "Bot resolved", data: total("bot_resolved") },
    ] },
    options: { ...common, plugins: { title: { display: true, text: `Contacts (all ${key}s)` } } },
  }));
  charts.push(new Chart(waits, {
    type: "line",
    data: { labels, datasets: [
      { label: "Wait p50 (s)", data: worst("wait_p50_s") },
      { label: "Wait p90 (s)", data: worst("wait_p90_s") },
      { label: "First response p50 (s)", data: worst("first_response_p50_s") },
    ] },
    options: { ...common, plugins: { title: { display: true, text: "Waits (the slowest per bucket)" } } },
  }));
}

// ----------------------------------------------------------------- service level

let slaCache = null;

async function slaToday() {
  if (slaCache && Date.now() - slaCache.at < 15000) return slaCache.items;
  const body = await get("reports/sla");
  slaCache = { at: Date.now(), items: body.items || [] };
  return slaCache.items;
}

export function forgetSla() {
  slaCache = null;
}

function slaText(s) {
  const parts = [];
  if (s.sla_accept_seconds) {
    const target = s.sla_accept_share !== null && s.sla_accept_share !== undefined ? `${Math.round(s.sla_accept_share * 100)}% ` : "";
    parts.push(`${target}accepted within ${duration(s.sla_accept_seconds)}: ${cell(s.sla_met_share, "%")} today`);
  }
  if (s.sla_first_response_seconds) {
    parts.push(`first response within ${duration(s.sla_first_response_seconds)}: ${cell(s.sla_first_response_met_share, "%")} today`);
  }
  return parts.join(" · ");
}

// The overview's service-level lines, one per queue with targets; refreshed with the overview.
export async function slaSummary() {
  let found;
  try {
    found = await slaToday();
  } catch {
    return null;
  }
  if (!found.length) return null;
  return h("section", { class: "panel", "data-testid": "sla-today" }, h("h2", {}, "Service level today"),
    h("ul", { class: "list compact" }, found.map((s) => {
      const missed = s.sla_accept_share !== null && s.sla_met_share !== null && s.sla_met_share < s.sla_accept_share;
      return h("li", { dataset: { queue: s.queue }, class: missed ? "hot" : "" }, h("strong", {}, s.queue), ` ${slaText(s)} (${s.received} contacts)`);
    })));
}

// The SLA widget beside a conversation (the manual's "SLA settings"): its queue's targets and today's share.
export function slaWidget(conv) {
  const box = h("section", { class: "widget sla-widget", "data-testid": "sla-widget" });
  const queue = queueOf(conv);
  const queueId = queue.id || conv.queue;
  slaToday().then((found) => {
    const mine = found.find((s) => s.queue === queueId);
    if (!mine) {
      box.hidden = true;
      return;
    }
    clear(box, h("h2", {}, "SLA"), h("p", {}, `${queue.name || queueId}: ${slaText(mine)}`));
  }).catch(() => { box.hidden = true; });
  return box;
}
