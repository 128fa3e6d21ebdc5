// The audit log screen (admins): who changed what, when and from where, newest first.
// Filters by login, action (or a prefix such as "conversation."), conversation and time; pages on with
// "Show older"; the export links download the same selection as CSV or JSON lines. Read-only: the hub
// offers no way to change an entry.

import { get, describeFailure, isMissingRoute } from "./api.js";
import { h, clear, button, field, dateTime, items } from "./util.js";
import { hasRoute } from "./state.js";

const PATH = "audit";
const ACTIONS = [
  "",
  "auth.",
  "auth.login",
  "auth.login_failed",
  "presence.changed",
  "conversation.",
  "conversation.closed",
  "conversation.part_closed",
  "message.sent",
  "template.",
  "agent.",
  "queue.",
  "contact.",
];

export function renderAudit(main) {
  const actor = h("input", { type: "text", name: "actor", autocomplete: "off", placeholder: "login" });
  const action = h("input", { type: "text", name: "action", list: "audit-actions", autocomplete: "off", placeholder: "e.g. conversation." });
  const conversation = h("input", { type: "number", name: "conversation", min: "1", placeholder: "id" });
  const from = h("input", { type: "datetime-local", name: "from" });
  const to = h("input", { type: "datetime-local", name: "to" });
  const results = h("div", { class: "audit-results", "data-testid": "audit-results" });
  const exports = h("p", { class: "audit-exports" });
  const form = h("form", { class: "audit-filters", "aria-label": "Filter the audit log" },
    h("datalist", { id: "audit-actions" }, ACTIONS.filter(Boolean).map((a) => h("option", { value: a }))),
    field("Who", actor),
    field("Action", action),
    field("Conversation", conversation),
    field("From", from),
    field("To", to),
    h("button", { type: "submit", class: "primary" }, "Search"),
  );
  const query = () => {
    const params = new URLSearchParams();
    if (actor.value.trim()) params.set("actor", actor.value.trim());
    if (action.value.trim()) params.set("action", action.value.trim());
    if (conversation.value) params.set("conversation", conversation.value);
    if (from.value) params.set("from", new Date(from.value).toISOString());
    if (to.value) params.set("to", new Date(to.value).toISOString());
    return params;
  };
  const search = () => {
    const params = query();
    const suffix = params.toString() ? `?${params}` : "";
    clear(exports, "Export this selection: ",
      h("a", { href: `/api/v1/audit.csv${suffix}`, download: "audit.csv", "data-testid": "audit-csv" }, "CSV"), " · ",
      h("a", { href: `/api/v1/audit.jsonl${suffix}`, download: "audit.jsonl", "data-testid": "audit-jsonl" }, "JSON lines"));
    show(results, params, null, []);
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  clear(main,
    h("section", { class: "panel audit" },
      h("h1", {}, "Audit log"),
      h("p", { class: "muted" }, "Every change made by an agent, a supervisor, an admin, a bot or the command line: who, when, from which address, and what it was before and after. Entries cannot be edited."),
      form, exports, results));
  search();
}

async function show(results, params, after, shown) {
  const page = new URLSearchParams(params);
  page.set("limit", "50");
  if (after) page.set("after", after);
  let answer;
  try {
    if (!hasRoute("GET", PATH)) throw Object.assign(new Error("missing"), { status: 404, code: "not_found", message: "Not Found" });
    answer = await get(`${PATH}?${page}`);
  } catch (err) {
    clear(results, h("p", { class: "notice", role: "alert" }, err && !isMissingRoute(err) ? describeFailure(err) : "This hub does not keep an audit log."));
    return;
  }
  const list = shown.concat(items(answer));
  clear(results,
    list.length === 0
      ? h("p", { class: "notice", "data-testid": "audit-empty" }, "No entry matches.")
      : h("table", { "data-testid": "audit-table" },
        h("thead", {}, h("tr", {}, ["When", "Who", "Action", "Target", "From", "Change"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, list.map(row))),
    answer && answer.next ? button("Show older", () => show(results, params, answer.next, list), { "data-testid": "audit-older" }) : null,
  );
}

function row(entry) {
  return h("tr", { dataset: { action: entry.action } },
    h("td", {}, dateTime(entry.at)),
    h("td", {}, entry.actor || h("span", { class: "muted" }, "system"), " ", h("span", { class: "chip" }, entry.actor_kind)),
    h("td", {}, h("code", {}, entry.action)),
    h("td", {}, entry.target || ""),
    h("td", {}, entry.address || h("span", { class: "muted" }, "—")),
    h("td", {}, change(entry)),
  );
}

function change(entry) {
  if (entry.before == null && entry.after == null) return h("span", { class: "muted" }, "—");
  const text = (value) => (value == null ? "—" : JSON.stringify(value, null, 2));
  return h("details", {},
    h("summary", {}, summary(entry)),
    h("div", { class: "audit-change" },
      h("div", {}, h("strong", {}, "Before"), h("pre", {}, text(entry.before))),
      h("div", {}, h("strong", {}, "After"), h("pre", {}, text(entry.after)))));
}

function summary(entry) {
  const before = entry.before || {};
  const after = entry.after || {};
  const changed = Object.keys(after).filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]));
  return changed.length ? changed.slice(0, 4).join(", ") + (changed.length > 4 ? ", …" : "") : "details";
}
