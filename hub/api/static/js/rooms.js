// The Co-browsing widget: "Create video room" for the open conversation. The hub sends the customer
// the room's link as a reply (under the outbound rules; a refusal is shown, and the link can still be
// copied and given another way); the agent's side of the room opens inside the widget.
//
// mountRooms(container, conversation) adds the widget to a side panel.

import { post, toast, describeFailure } from "./api.js";
import { h, clear, button, dateTime } from "./util.js";
import { errorBox, busy } from "./ui.js";

export function mountRooms(container, conv) {
  const headingId = `rooms-h-${conv.id}`;
  const box = h("section", { class: "widget rooms-widget", "aria-labelledby": headingId });
  container.appendChild(box);
  const error = errorBox();
  const create = button("Create video room", () => busy(create, start), { class: "primary" });
  clear(
    box,
    h("h2", { id: headingId }, "Co-browsing"),
    h("p", { class: "muted" }, "A video room to show the customer around: camera, screen and microphone."),
    create,
    error.el,
  );

  async function start() {
    error.clear();
    let room;
    try {
      room = await post(`conversations/${conv.id}/rooms`);
    } catch (err) {
      error.show(describeFailure(err));
      return;
    }
    const warnings = room.warnings || [];
    const link = h("input", { type: "text", readonly: true, value: room.customer_url, class: "room-link", "aria-label": "Customer's link" });
    const copy = button("Copy link", async () => {
      try {
        await navigator.clipboard.writeText(room.customer_url);
        toast("Link copied.");
      } catch {
        link.select();
      }
    });
    // same origin as the console, whatever address the hub calls itself by
    const agentPath = new URL(room.agent_url, location.href).pathname;
    const frame = h("iframe", {
      class: "room-frame",
      src: agentPath,
      title: "Video room",
      allow: "camera; microphone; display-capture; autoplay; fullscreen",
    });
    clear(
      box,
      h("h2", { id: headingId }, "Co-browsing"),
      warnings.length
        ? h("p", { class: "notice", role: "status", dataset: { testid: "room-warning" } }, `${warnings.map((w) => w.message).join(" ")} Give the customer the link another way.`)
        : h("p", { class: "muted", role: "status" }, "The customer was sent the link."),
      h("div", { class: "row" }, link, copy),
      h("p", { class: "muted" }, `The links work until ${dateTime(room.expires_at)}. `, h("a", { href: agentPath, target: "_blank", rel: "noopener" }, "Open in a new window")),
      frame,
      button("Close room view", () => mountAgain(), { class: "quiet" }),
    );
  }

  function mountAgain() {
    const next = h("div");
    box.replaceWith(next);
    mountRooms(next.parentNode, conv);
    next.remove();
  }

  return { el: box };
}
