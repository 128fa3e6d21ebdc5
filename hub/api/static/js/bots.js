// Bots in the console: the "Bot" list (conversations a bot is answering, with a "Bot" badge, to take over),
// the hand-off reason on a conversation, and "Return to bot". app.js and conversation.js call these.

import { get, post } from "./api.js";
import { h, items, since, channelLabel } from "./util.js";
import { queueOf, customerName } from "./state.js";
import { modal, errorBox, busy } from "./ui.js";

const REASONS = {
  bot_asked: "the bot handed it over",
  customer_asked: "the customer asked for a person",
  bot_silent: "the bot did not answer in time",
  bot_failed: "the bot failed",
};

export function botBadge() {
  return h("span", { class: "chip chip-bot", "data-testid": "bot-badge" }, "Bot");
}

// the top bar's "Bot" button: how many conversations bots are answering, and the list of them
export function botButton({ onTaken }) {
  const count = h("span", { class: "badge", "data-testid": "bot-count" }, "0");
  const el = h("button", { type: "button", class: "badge-button", "aria-haspopup": "dialog", "data-testid": "bot-filter" }, "Bot ", count);
  const refresh = async () => {
    try {
      const found = items(await get("conversations?state=bot&limit=200"));
      count.textContent = String(found.length);
      return found;
    } catch {
      return [];
    }
  };
  el.addEventListener("click", async () => {
    const dlg = modal("Conversations with a bot", { wide: true, label: "bots" });
    const list = h("ul", { class: "list", "aria-label": "Conversations with a bot" });
    dlg.body.appendChild(list);
    const found = await refresh();
    if (!found.length) list.appendChild(h("li", { class: "muted" }, "No bot is answering anyone in your queues."));
    for (const conv of found) {
      const error = errorBox();
      const take = h("button", { type: "button", class: "primary" }, "Take over");
      take.addEventListener("click", () =>
        busy(take, async () => {
          try {
            const answer = await post(`conversations/${conv.id}/take`, {});
            dlg.close();
            onTaken(answer || conv);
          } catch (err) {
            error.show(err.message);
          }
        }),
      );
      const queue = queueOf(conv);
      list.appendChild(
        h("li", { class: "list-row", "data-conversation": String(conv.id) },
          botBadge(),
          h("span", { class: `chip ch-${conv.channel}` }, channelLabel[conv.channel] || conv.channel),
          h("strong", {}, customerName(conv)),
          h("span", { class: "muted" }, `${queue.number ? `${queue.number} ` : ""}${queue.name || ""}${conv.bot ? ` · ${conv.bot}` : ""}`),
          h("span", {}, since(conv.last_message_at || conv.opened_at)),
          take,
          error.el,
        ),
      );
    }
  });
  refresh();
  setInterval(refresh, 15000);
  return el;
}

// under a conversation's header: why the bot handed it over, and a way back to the bot
export function botPanel(conv, { onReturned }) {
  const el = h("div", { class: "bot-panel", "data-testid": "bot-panel" });
  const handoff = conv.handoff;
  if (conv.state === "bot") el.appendChild(botBadge());
  if (handoff && conv.state !== "bot") {
    const why = REASONS[handoff.reason] || handoff.reason;
    el.appendChild(h("span", { class: "handoff-reason", "data-testid": "handoff-reason" }, `From the bot: ${why}`));
    if (handoff.note) el.appendChild(h("span", { class: "muted handoff-note" }, ` — ${handoff.note}`));
  }
  if (conv.bot && conv.state !== "bot" && conv.state !== "closed") {
    const error = errorBox();
    const back = h("button", { type: "button", "data-testid": "return-to-bot" }, "Return to bot");
    back.addEventListener("click", () =>
      busy(back, async () => {
        try {
          await post(`conversations/${conv.id}/bot`, { bot: conv.bot });
          onReturned();
        } catch (err) {
          error.show(err.message);
        }
      }),
    );
    el.append(back, error.el);
  }
  if (!el.childNodes.length) el.hidden = true;
  return el;
}
