// Admin screens: channel accounts with their health, queues (members, offer
// timeout, allowed statuses, URL), the status catalogue, agents and roles, and
// the webhook deliveries the hub rejected (signed, but never usable).
// Each save waits for the hub's answer and shows its reason when refused.

import { get, post, put, del, toast, describeFailure, isMissingRoute } from "./api.js";
import { h, clear, button, field, select, dateTime, items, idOf, channelLabel } from "./util.js";
import { state, presenceOf, hasRoute } from "./state.js";
import { modal, errorBox, busy } from "./ui.js";
import { renderWebhooksOut } from "./webhooks_out.js";

const SECTIONS = [
  ["accounts", "Channel accounts"],
  ["queues", "Queues"],
  ["statuses", "Statuses"],
  ["agents", "Agents"],
  ["rejected", "Rejected webhooks"],
  ["webhooks-out", "Outgoing webhooks"],
];

// The section shown, kept when the screen is drawn again (a reconnect redraws it).
let current = "accounts";

export function renderAdmin(main) {
  const tabs = h("div", { class: "subnav", role: "tablist", "aria-label": "Admin sections" });
  const body = h("section", { class: "panel admin-body" });
  clear(main, tabs, body);
  const open = (name) => {
    current = name;
    for (const b of tabs.children) b.setAttribute("aria-selected", String(b.dataset.section === name));
    // Each opening draws into an element of its own: a section still loading when another is chosen
    // finishes into a detached element instead of painting over the one chosen.
    const section = h("div", { class: "admin-section" });
    clear(body, section);
    ({ accounts, queues, statuses, agents, rejected, "webhooks-out": renderWebhooksOut })[name](section);
  };
  for (const [name, label] of SECTIONS) tabs.appendChild(h("button", { type: "button", role: "tab", dataset: { section: name }, onclick: () => open(name) }, label));
  open(current);
}

function unavailable(body, title, err) {
  clear(body, h("h1", {}, title), h("p", { class: "notice" }, err && !isMissingRoute(err) ? describeFailure(err) : "This hub does not serve this part of the admin API yet."));
}

async function load(path) {
  if (!hasRoute("GET", path)) throw Object.assign(new Error("missing"), { status: 404, code: "not_found", message: "Not Found" });
  return items(await get(path));
}

// ------------------------------------------------------------------ accounts

async function accounts(body) {
  let list;
  try {
    list = await load("accounts");
  } catch (err) {
    return unavailable(body, "Channel accounts", err);
  }
  clear(
    body,
    h("h1", {}, "Channel accounts"),
    h("p", { class: "muted" }, "Accounts are configured in the hub's configuration file; their health is shown here."),
    h("table", {},
      h("thead", {}, h("tr", {}, ["Account", "Channel", "Queue", "Health", "Last webhook", "Last send", "Last send error"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, list.map((a) => {
        const health = a.health || a;
        const error = health.last_send_error;
        return h("tr", { class: error ? "unhealthy" : "" },
          h("th", { scope: "row" }, a.id),
          h("td", {}, `${channelLabel[a.channel] || a.channel}${a.provider && a.provider !== a.channel ? ` (${a.provider})` : ""}`),
          h("td", {}, idOf(a.queue) || ""),
          h("td", {}, h("span", { class: `chip health-${health.state || "unknown"}` }, health.state || "unknown")),
          h("td", {}, health.last_webhook_at ? dateTime(health.last_webhook_at) : "never"),
          h("td", {}, health.last_send_at ? dateTime(health.last_send_at) : "never"),
          h("td", { class: error ? "error-text" : "muted" }, error ? `${error}${health.last_send_error_at ? ` (${dateTime(health.last_send_error_at)})` : ""}` : "none"),
        );
      })),
    ),
  );
}

// ------------------------------------------------------------------ queues

async function queues(body) {
  let list;
  try {
    list = await load("queues");
  } catch (err) {
    return unavailable(body, "Queues", err);
  }
  state.queues = list;
  const agents = state.agents;
  clear(
    body,
    h("h1", {}, "Queues"),
    h("table", {},
      h("thead", {}, h("tr", {}, ["Number", "Queue", "Offer timeout", "Statuses at close", "Members", "URL", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, list.map((q) => {
        const members = q.members ? q.members.map((m) => agentLabel(m, agents)) : agents.filter((a) => (a.queues || []).map(idOf).map(String).includes(String(q.id))).map((a) => a.display_name || a.login);
        return h("tr", {},
          h("td", { class: "num" }, String(q.number ?? "")),
          h("th", { scope: "row" }, q.name || q.id),
          h("td", { class: "num" }, `${q.offer_timeout ?? "?"} s`),
          h("td", {}, (q.statuses || []).length ? q.statuses.map((s) => idOf(s)).join(", ") : "all"),
          h("td", {}, members.join(", ") || "–"),
          h("td", { class: "muted" }, q.url_template || ""),
          h("td", {}, hasRoute("PUT", `queues/${q.id}`) ? button("Edit", () => editQueue(q, () => queues(body)), { "aria-label": `Edit queue ${q.name}` }) : null),
        );
      })),
    ),
  );
}

function agentLabel(m, agents) {
  if (typeof m === "object") return m.display_name || m.login || m.id;
  const a = agents.find((x) => String(x.id) === String(m) || x.login === m);
  return a ? a.display_name || a.login : String(m);
}

function editQueue(q, done) {
  const dlg = modal(`Queue ${q.name}`, { label: "queue" });
  const name = h("input", { value: q.name || "" });
  const number = h("input", { type: "number", value: q.number ?? "" });
  const timeout = h("input", { type: "number", min: 1, value: q.offer_timeout ?? 30 });
  const url = h("input", { value: q.url_template || "", placeholder: "https://crm.example/search?phone={external_id}" });
  const chosen = new Set((q.statuses || []).map((s) => String(idOf(s))));
  const statusBoxes = state.statuses.map((s) => {
    const box = h("input", { type: "checkbox", value: s.id, checked: chosen.has(String(s.id)) });
    return h("label", { class: "choice" }, box, ` ${s.name || s.id}`);
  });
  const memberIds = new Set((q.members || state.agents.filter((a) => (a.queues || []).map(idOf).map(String).includes(String(q.id)))).map((m) => String(idOf(m))));
  const memberBoxes = state.agents.map((a) => h("label", { class: "choice" }, h("input", { type: "checkbox", value: a.id, checked: memberIds.has(String(a.id)) }), ` ${a.display_name || a.login}`));
  const error = errorBox();
  dlg.body.append(
    field("Name", name),
    field("Number", number),
    field("Offer timeout (seconds)", timeout),
    field("URL template", url, "{conversation}, {external_id}, {channel}, {queue} are filled in."),
    h("fieldset", {}, h("legend", {}, "Statuses allowed at close (none = all)"), statusBoxes),
    h("fieldset", {}, h("legend", {}, "Members"), memberBoxes),
    error.el,
  );
  const save = h("button", { type: "button", class: "primary" }, "Save");
  dlg.footer.append(save);
  save.addEventListener("click", () =>
    busy(save, async () => {
      const payload = {
        name: name.value.trim(),
        number: Number(number.value),
        offer_timeout: Number(timeout.value),
        url_template: url.value.trim() || null,
        statuses: statusBoxes.map((l) => l.querySelector("input")).filter((b) => b.checked).map((b) => b.value),
      };
      const members = memberBoxes.map((l) => l.querySelector("input")).filter((b) => b.checked).map((b) => Number(b.value));
      try {
        await put(`queues/${q.id}`, payload);
        if (state.agents.length) await put(`queues/${q.id}/members`, { agents: members });
        toast("Queue saved.");
        dlg.close();
        done();
      } catch (err) {
        error.show(describeFailure(err));
      }
    }),
  );
}

// ------------------------------------------------------------------ statuses

async function statuses(body) {
  let list;
  try {
    list = await load("statuses");
  } catch (err) {
    return unavailable(body, "Statuses", err);
  }
  state.statuses = list;
  const id = h("input", { placeholder: "id (e.g. callback)", "aria-label": "New status id" });
  const name = h("input", { placeholder: "Name", "aria-label": "New status name" });
  const error = errorBox();
  const add = h("button", { type: "button", class: "primary" }, "Add status");
  add.addEventListener("click", () =>
    busy(add, async () => {
      try {
        await post("statuses", { id: id.value.trim(), name: name.value.trim() });
        toast("Status added.");
        statuses(body);
      } catch (err) {
        error.show(describeFailure(err));
      }
    }),
  );
  clear(
    body,
    h("h1", {}, "Status catalogue"),
    h("p", { class: "muted" }, "A conversation closes only with a status its queue allows."),
    h("ul", { class: "list" }, list.map((s) => h("li", { class: "list-row" }, h("code", {}, s.id), h("span", {}, s.name),
      hasRoute("DELETE", `statuses/${s.id}`) ? button("Delete", (ev) => busy(ev.currentTarget, async () => {
        try {
          await del(`statuses/${encodeURIComponent(s.id)}`);
          toast("Status deleted.");
          statuses(body);
        } catch (err) {
          toast(describeFailure(err), "error");
        }
      }), { class: "quiet", "aria-label": `Delete status ${s.name}` }) : null))),
    hasRoute("POST", "statuses") ? h("div", { class: "row" }, id, name, add) : null,
    error.el,
  );
}

// ------------------------------------------------------------------ agents

async function agents(body) {
  let list;
  try {
    list = await load("agents");
  } catch (err) {
    return unavailable(body, "Agents", err);
  }
  state.agents = list;
  clear(
    body,
    h("h1", {}, "Agents and roles"),
    hasRoute("POST", "agents") ? button("New agent", () => editAgent(null, () => agents(body)), { class: "primary" }) : null,
    h("table", {},
      h("thead", {}, h("tr", {}, ["Login", "Name", "Role", "Queues", "Capacity", "Presence", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, list.map((a) => {
        const p = presenceOf(a);
        return h("tr", {},
          h("th", { scope: "row" }, a.login),
          h("td", {}, a.display_name || ""),
          h("td", {}, a.role),
          h("td", {}, (a.queues || []).map(idOf).join(", ")),
          h("td", { class: "num" }, String(a.capacity ?? "")),
          h("td", {}, `${p.state}${p.reason ? `: ${p.reason}` : ""}`),
          h("td", {}, hasRoute("PUT", `agents/${a.id}`) ? button("Edit", () => editAgent(a, () => agents(body)), { "aria-label": `Edit agent ${a.login}` }) : null),
        );
      })),
    ),
  );
}

function editAgent(agent, done) {
  const dlg = modal(agent ? `Agent ${agent.login}` : "New agent", { label: "agent" });
  const login = h("input", { value: agent?.login || "", readonly: Boolean(agent), autocomplete: "off" });
  const displayName = h("input", { value: agent?.display_name || "" });
  const password = h("input", { type: "password", autocomplete: "new-password", placeholder: agent ? "unchanged" : "" });
  const role = select(["agent", "supervisor", "admin"], agent?.role || "agent");
  const capacity = h("input", { type: "number", min: 1, value: agent?.capacity ?? 3 });
  const mine = new Set((agent?.queues || []).map((q) => String(idOf(q))));
  const queueBoxes = state.queues.map((q) => h("label", { class: "choice" }, h("input", { type: "checkbox", value: q.id, checked: mine.has(String(q.id)) }), ` ${q.number ?? ""} ${q.name}`));
  const error = errorBox();
  dlg.body.append(field("Login", login), field("Name", displayName), field("Password", password), field("Role", role), field("Capacity (concurrent conversations)", capacity), h("fieldset", {}, h("legend", {}, "Queues"), queueBoxes), error.el);
  const save = h("button", { type: "button", class: "primary" }, "Save");
  dlg.footer.append(save);
  save.addEventListener("click", () =>
    busy(save, async () => {
      const payload = {
        display_name: displayName.value.trim() || login.value.trim(),
        role: role.value,
        capacity: Number(capacity.value),
        queues: queueBoxes.map((l) => l.querySelector("input")).filter((b) => b.checked).map((b) => b.value),
      };
      if (password.value) payload.password = password.value;
      try {
        if (agent) await put(`agents/${agent.id}`, payload);
        else await post("agents", { login: login.value.trim(), ...payload });
        toast("Agent saved.");
        dlg.close();
        done();
      } catch (err) {
        error.show(describeFailure(err));
      }
    }),
  );
}

// ---------------------------------------------------------- rejected webhooks

const REJECTED = "webhooks/rejected";

async function rejected(body, after = null, shown = []) {
  let page;
  try {
    if (!hasRoute("GET", REJECTED)) throw Object.assign(new Error("missing"), { status: 404, code: "not_found", message: "Not Found" });
    page = await get(after ? `${REJECTED}?after=${encodeURIComponent(after)}` : REJECTED);
  } catch (err) {
    return unavailable(body, "Rejected webhooks", err);
  }
  const list = shown.concat(items(page));
  clear(
    body,
    h("h1", {}, "Rejected webhooks"),
    h("p", { class: "muted" }, "Deliveries that were correctly signed but that the hub can never use. Each was answered 200 so that the provider stops sending it again; it is kept here as received."),
    list.length === 0
      ? h("p", { class: "notice", "data-testid": "rejected-empty" }, "No delivery has been rejected.")
      : h("table", { "data-testid": "rejected-webhooks" },
        h("thead", {}, h("tr", {}, ["Received", "Channel", "Account", "Reason", "Body"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, list.map((r) => h("tr", {},
          h("td", {}, dateTime(r.received_at)),
          h("td", {}, channelLabel[r.channel] || r.channel),
          h("td", {}, r.account || h("span", { class: "muted" }, "unknown")),
          h("td", {}, h("code", {}, r.reason_code), " ", r.reason),
          h("td", {}, h("details", {}, h("summary", {}, `${r.size ?? r.body.length} bytes`), h("pre", { class: "raw-body" }, shownBody(r.body)))),
        ))),
      ),
    page && page.next ? button("Show older", () => rejected(body, page.next, list)) : null,
  );
}

const SHOWN_BODY = 64 * 1024; // characters: a body may be up to the hub's body limit

function shownBody(text) {
  return text.length > SHOWN_BODY ? `${text.slice(0, SHOWN_BODY)}\n… (${text.length - SHOWN_BODY} more characters)` : text;
}
