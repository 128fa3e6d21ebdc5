// What the CRM record pages share (a contact's record, a ticket's page): the list of conversations, each one
// opening on the conversation screen when the agent may see it, and saying why not when they may not.

import { get, describeFailure, isMissingRoute } from "./api.js";
import { navigate } from "./nav.js";
import { h, clear, button, items, dateTime, channelLabel } from "./util.js";
import { upsertConversation, queueOf } from "./state.js";
import { errorBox } from "./ui.js";

// Open conversation `id` on the conversation screen; a refusal (not yours, gone) is shown in `error`.
export async function openConversation(id, error) {
  error.clear();
  try {
    upsertConversation(await get(`conversations/${encodeURIComponent(id)}`));
    navigate(`conv:${id}`);
  } catch (err) {
    error.show(`Conversation #${id}: ${describeFailure(err)}`);
  }
}

// A section listing the conversations `path` answers (a page of ConversationSummary), newest first; `extra(c)`
// may add controls to a row.
export function conversationsSection(path, { heading = "Conversations", empty = "No conversations.", extra } = {}) {
  const id = `convs-h-${Math.random().toString(36).slice(2, 8)}`;
  const list = h("ul", { class: "list compact", "data-testid": "record-conversations" });
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const error = errorBox();
  const section = h("section", { class: "record-section", "aria-labelledby": id }, h("h2", { id }, heading), status, list, error.el);
  get(path)
    .then((page) => {
      const found = items(page);
      status.textContent = found.length ? "" : empty;
      clear(list, ...found.map((c) => h("li", { class: "list-row", dataset: { conversation: String(c.id) } },
        h("span", { class: `chip ch-${c.channel}` }, channelLabel[c.channel] || c.channel || ""),
        h("span", {}, `#${c.id} ${dateTime(c.opened_at)}`),
        h("span", { class: "muted" }, `${queueOf(c).name || ""} · ${c.state || ""}${c.status ? ` (${c.status})` : ""}`),
        c.identity?.display_name || c.identity?.external_id ? h("span", { class: "muted" }, c.identity.display_name || c.identity.external_id) : null,
        button("Open", () => openConversation(c.id, error), { class: "link", "aria-label": `Open conversation #${c.id}` }),
        extra ? extra(c) : null,
      )));
    })
    .catch((err) => {
      status.textContent = isMissingRoute(err) ? "This hub does not list these conversations." : describeFailure(err);
    });
  return section;
}

// The page's frame: a way back, the heading, and what follows.
export function recordFrame(main, { title, onBack, testid }, ...children) {
  const headingId = `record-h-${Math.random().toString(36).slice(2, 8)}`;
  const heading = h("h1", { id: headingId }, title);
  clear(
    main,
    h("article", { class: "panel record-page", "aria-labelledby": headingId, "data-testid": testid },
      onBack ? button("← Back", onBack, { class: "quiet" }) : null,
      heading,
      ...children,
    ),
  );
  return heading;
}

// A save the hub refused: its reason in `error`, and the field it names (one of `inputs`) marked and focused.
export function showSaveFailure(error, inputs, err) {
  error.show(describeFailure(err));
  const named = inputs[err.details?.field];
  if (named) {
    named.setAttribute("aria-invalid", "true");
    named.focus();
  }
}

// A page that could not be read: the hub's reason and the way back.
export function recordFailure(main, err, onBack) {
  clear(main, h("section", { class: "panel" }, h("p", { class: "error-text", role: "alert" }, describeFailure(err)), onBack ? button("← Back", onBack, { class: "quiet" }) : null));
}
