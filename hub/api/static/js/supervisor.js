// Supervisor overview: per queue the waiting count, the longest wait and the
// agents ready / paused / busy. Live: every queue, presence or conversation
// event on the WebSocket re-reads the figures (debounced).

import { describeFailure } from "./api.js";
import { h, clear, since, duration, items, throttle } from "./util.js";
import { state, presenceOf, tryGet } from "./state.js";

let mounted = null;

// "open", or when a queue outside its business hours opens again
function hoursText(hours) {
  if (!hours) return "–";
  if (hours.open) return "open";
  return hours.opens_at ? `closed until ${new Date(hours.opens_at).toLocaleString()}` : "closed";
}

export function renderSupervisor(main) {
  const table = h("div", { class: "overview", "data-testid": "overview" });
  const agentsBox = h("section", { class: "panel" });
  const stamp = h("p", { class: "muted", role: "status" });
  clear(main, h("section", { class: "panel" }, h("h1", {}, "Queues overview"), stamp, table), agentsBox);
  mounted = { main, table, agentsBox, stamp };
  refresh();
}

export function supervisorEvent(kind) {
  if (!mounted || !mounted.main.isConnected || !mounted.main.contains(mounted.table)) {
    mounted = null;
    return;
  }
  if (/queue|presence|conversation|offer|agent/.test(kind)) refreshSoon();
}

const refreshSoon = throttle(() => refresh(), 1000, 200);

async function refresh() {
  if (!mounted) return;
  const { table, agentsBox, stamp } = mounted;
  let queues;
  let agents;
  try {
    [queues, agents] = await Promise.all([tryGet("queues", null), tryGet("agents", [])]);
  } catch (err) {
    clear(table, h("p", { class: "error-text" }, describeFailure(err)));
    return;
  }
  if (!mounted) return;
  if (queues === null) {
    clear(table, h("p", { class: "notice" }, "This hub does not serve the queue figures yet."));
    return;
  }
  queues = items(queues);
  agents = items(agents);
  state.queues = queues;
  if (agents.length) state.agents = agents;
  clear(
    table,
    h("table", {},
      h("thead", {}, h("tr", {}, ["Queue", "Hours", "Bot", "Waiting", "Offered", "Active", "Longest wait", "Ready", "Paused", "Busy", "Offline"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, queues.map((q) => {
        const f = q.figures || {};
        const a = f.agents || {};
        const longest = f.longest_wait_seconds;
        return h("tr", { dataset: { queue: q.id } },
          h("th", { scope: "row" }, `${q.number ?? ""} ${q.name || q.id}`.trim()),
          h("td", { "data-testid": `hours-${q.id}` }, hoursText(q.hours)),
          h("td", { class: "num", "data-testid": `bot-${q.id}` }, String(f.bot ?? 0)),
          h("td", { class: f.waiting ? "num hot" : "num", "data-testid": `waiting-${q.id}` }, String(f.waiting ?? 0)),
          h("td", { class: "num" }, String(f.offered ?? 0)),
          h("td", { class: "num" }, String(f.active ?? 0)),
          h("td", { class: "num", "data-testid": `longest-${q.id}` }, longest === null || longest === undefined ? "–" : duration(longest)),
          h("td", { class: "num" }, String(a.ready ?? 0)),
          h("td", { class: "num" }, String(a.paused ?? 0)),
          h("td", { class: "num" }, String(a.busy ?? 0)),
          h("td", { class: "num" }, String(a.offline ?? 0)),
        );
      })),
    ),
  );
  clear(
    agentsBox,
    h("h2", {}, "Agents"),
    agents.length
      ? h("ul", { class: "list compact" }, agents.map((a) => {
          const p = presenceOf(a);
          return h("li", { class: `presence-${p.state}` }, h("span", { class: `dot dot-${p.state}`, "aria-hidden": "true" }), ` ${a.display_name || a.login} `, h("small", { class: "muted" }, `${p.state}${p.reason ? `: ${p.reason}` : ""}${p.paid === false ? " (unpaid)" : ""}${p.since ? ` · ${since(p.since)}` : ""}${a.load !== undefined ? ` · ${a.load}/${a.capacity ?? "?"} conversations` : ""}`));
        }))
      : h("p", { class: "muted" }, "The agent list is not available on this hub."),
  );
  stamp.textContent = `Updated ${new Date().toLocaleTimeString()} · live`;
}
