// Admin screen of the outgoing webhooks (integrations): the subscribed URLs with their
// events, scope and state; create one (the hub makes the signing secret and shows it
// once); a paused one can be resumed; each one's deliveries with their attempts and
// last error, newest first, and any delivery can be sent again (replay).

import { get, post, del, toast, describeFailure, isMissingRoute } from "./api.js";
import { h, clear, button, field, dateTime, items } from "./util.js";
import { state, hasRoute } from "./state.js";
import { modal, errorBox, busy } from "./ui.js";

const PATH = "webhooks-out";
const EVENT_TYPES = [
  "message.created",
  "message.delivery",
  "conversation.opened",
  "conversation.assigned",
  "conversation.transferred",
  "conversation.handed_off",
  "conversation.closed",
  "contact.updated",
];

// The view asked for last owns the section. One still loading when another is asked for (the
// list after "Back", while a replay's refresh of the deliveries is on its way) is dropped instead
// of painting over it.
const asked = new WeakMap();
function ask(body) {
  const mine = {};
  asked.set(body, mine);
  return () => asked.get(body) === mine;
}

export async function renderWebhooksOut(body) {
  const current = ask(body);
  let list;
  try {
    if (!hasRoute("GET", PATH)) throw Object.assign(new Error("missing"), { status: 404, code: "not_found" });
    list = items(await get(PATH));
  } catch (err) {
    if (!current()) return;
    return clear(body, h("h1", {}, "Outgoing webhooks"), h("p", { class: "notice" }, err && !isMissingRoute(err) ? describeFailure(err) : "This hub does not serve outgoing webhooks yet."));
  }
  if (!current()) return;
  const refresh = () => renderWebhooksOut(body);
  clear(
    body,
    h("h1", {}, "Outgoing webhooks"),
    h("p", { class: "muted" }, "Integrations hear of hub events at their URL, signed with the Standard Webhooks scheme. Deliveries are kept in order per conversation and retried for at least a day."),
    button("New webhook", () => createWebhook(refresh), { class: "primary", "data-testid": "webhook-new" }),
    list.length === 0
      ? h("p", { class: "notice", "data-testid": "webhooks-empty" }, "No outgoing webhook yet.")
      : h("table", { "data-testid": "webhooks-out" },
        h("thead", {}, h("tr", {}, ["Webhook", "URL", "Events", "Queues", "State", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, list.map((w) => h("tr", { dataset: { webhook: w.id } },
          h("th", { scope: "row" }, w.id, w.source === "config" ? h("span", { class: "chip", title: "defined in the configuration file" }, "config") : null),
          h("td", { class: "muted" }, w.url),
          h("td", {}, w.events.join(", ")),
          h("td", {}, w.queues ? w.queues.join(", ") : "all"),
          h("td", {}, w.paused
            ? h("span", { class: "chip health-failing", title: w.paused_reason || "" }, "paused")
            : h("span", { class: "chip health-ok" }, w.consecutive_failures ? `failing (${w.consecutive_failures})` : "active")),
          h("td", {},
            button("Deliveries", () => deliveries(body, w), { "aria-label": `Deliveries of ${w.id}` }),
            w.paused ? button("Resume", () => resume(w, refresh), { "aria-label": `Resume ${w.id}` }) : null,
            w.source !== "config" ? button("Delete", () => remove(w, refresh), { "aria-label": `Delete ${w.id}` }) : null,
          ),
        ))),
      ),
  );
}

async function resume(w, done) {
  try {
    await post(`${PATH}/${encodeURIComponent(w.id)}/resume`);
    toast(`Webhook ${w.id} resumed.`);
    done();
  } catch (err) {
    toast(describeFailure(err), "error");
  }
}

async function remove(w, done) {
  if (!window.confirm(`Delete webhook ${w.id} and its deliveries?`)) return;
  try {
    await del(`${PATH}/${encodeURIComponent(w.id)}`);
    toast(`Webhook ${w.id} deleted.`);
    done();
  } catch (err) {
    toast(describeFailure(err), "error");
  }
}

function createWebhook(done) {
  const dlg = modal("New outgoing webhook", { label: "webhook" });
  const id = h("input", { name: "id", placeholder: "crm" });
  const url = h("input", { name: "url", type: "url", placeholder: "https://crm.example/hooks/channelhub" });
  const eventBoxes = EVENT_TYPES.map((t) => h("label", { class: "choice" }, h("input", { type: "checkbox", value: t }), ` ${t}`));
  const queueBoxes = (state.queues || []).map((q) => h("label", { class: "choice" }, h("input", { type: "checkbox", value: q.id }), ` ${q.name || q.id}`));
  const error = errorBox();
  dlg.body.append(
    field("Id", id),
    field("URL", url),
    h("fieldset", {}, h("legend", {}, "Events"), eventBoxes),
    queueBoxes.length ? h("fieldset", {}, h("legend", {}, "Only these queues (none = all)"), queueBoxes) : null,
    error.el,
  );
  const save = h("button", { type: "button", class: "primary" }, "Create");
  dlg.footer.append(save);
  save.addEventListener("click", () =>
    busy(save, async () => {
      const checked = (boxes) => boxes.map((l) => l.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
      const payload = { id: id.value.trim(), url: url.value.trim(), events: checked(eventBoxes) };
      const queues = checked(queueBoxes);
      if (queues.length) payload.queues = queues;
      try {
        const created = await post(PATH, payload);
        clear(dlg.body,
          h("p", {}, `Webhook ${created.id} created. Its signing secret is shown this once: give it to the receiver.`),
          h("pre", { class: "raw-body", "data-testid": "webhook-secret" }, created.secret));
        clear(dlg.footer, button("Done", () => dlg.close(), { class: "primary" }));
        done();
      } catch (err) {
        error.show(describeFailure(err));
      }
    }),
  );
}

async function deliveries(body, w, after = null, shown = []) {
  const current = ask(body);
  let page;
  try {
    const path = `${PATH}/${encodeURIComponent(w.id)}/deliveries`;
    page = await get(after ? `${path}?after=${encodeURIComponent(after)}` : path);
  } catch (err) {
    toast(describeFailure(err), "error");
    return;
  }
  if (!current()) return;
  const list = shown.concat(items(page));
  clear(
    body,
    h("h1", {}, `Deliveries of ${w.id}`),
    button("Back to webhooks", () => renderWebhooksOut(body)),
    button("Refresh", () => deliveries(body, w)),
    list.length === 0
      ? h("p", { class: "notice", "data-testid": "deliveries-empty" }, "Nothing delivered yet.")
      : h("table", { "data-testid": "webhook-deliveries" },
        h("thead", {}, h("tr", {}, ["Delivery", "Event", "Conversation", "Status", "Attempts", "Last error", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, list.map((d) => h("tr", { dataset: { delivery: d.id, status: d.status } },
          h("th", { scope: "row" }, h("code", {}, d.webhook_id), h("div", { class: "muted" }, dateTime(d.created_at))),
          h("td", {}, d.type),
          h("td", { class: "num" }, d.conversation_id ?? "–"),
          h("td", {}, h("span", { class: `chip status-${d.status}` }, d.status), d.next_attempt_at ? h("div", { class: "muted" }, `next ${dateTime(d.next_attempt_at)}`) : null),
          h("td", {}, h("details", {}, h("summary", {}, String(d.attempts)),
            h("ol", { class: "attempts" }, d.attempt_log.map((a) => h("li", {},
              `${dateTime(a.at)}: ${a.status_code ?? "no answer"}${a.error ? ` (${a.error})` : ""}, ${a.duration_ms} ms`))))),
          h("td", { class: d.last_error ? "error-text" : "muted" }, d.last_error || "none"),
          h("td", {}, button("Replay", () => replay(body, w, d), { "aria-label": `Replay ${d.webhook_id}` })),
        ))),
      ),
    page && page.next ? button("Show older", () => deliveries(body, w, page.next, list)) : null,
  );
}

async function replay(body, w, d) {
  const current = ask(body);
  try {
    await post(`${PATH}/${encodeURIComponent(w.id)}/deliveries/${d.id}/replay`);
    toast(`Delivery ${d.webhook_id} will be sent again.`);
    if (current()) deliveries(body, w);
  } catch (err) {
    toast(describeFailure(err), "error");
  }
}
