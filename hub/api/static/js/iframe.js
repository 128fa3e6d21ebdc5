// The Page in iframe widget: the queue's configured page for this conversation, in a sandboxed frame.
//
// The address comes from the server (GET conversations/{id}/iframe), which fills the queue's
// template with URL-encoded values on an allowed host; the console only shows it. The sandbox lets
// the page run its scripts and forms with its own origin (its own login cookies) and open links in
// new tabs, but never navigate the console's page (no allow-top-navigation), and no referrer is
// sent. The allowed hosts must not include the hub's own host (a same-origin page with scripts
// could lift its own sandbox): docs/articles.md says so.

import { get, describeFailure } from "./api.js";
import { h, safeHref } from "./util.js";
import { queueOf } from "./state.js";

const SANDBOX = "allow-scripts allow-forms allow-same-origin allow-popups allow-popups-to-escape-sandbox";

let withPages = null; // the ids of the queues that have a page, asked once per console

function queuesWithPages() {
  if (!withPages) {
    withPages = get("iframe/queues").then((answer) => new Set(answer.queues || [])).catch((err) => {
      withPages = null;
      throw err;
    });
  }
  return withPages;
}

/** Mounts the widget at the end of `container` when the conversation's queue has a page; returns its element or null. */
export async function mountIframeWidget(container, conv) {
  const queueId = queueOf(conv).id ?? conv.queue;
  if (!(await queuesWithPages()).has(String(queueId))) return null;
  let url = null;
  try {
    url = safeHref((await get(`conversations/${conv.id}/iframe`)).url);
  } catch (err) {
    if (err?.status === 404 || err?.code === "iframe_not_configured") return null; // no page for this queue
    const box = h("section", { class: "widget iframe-widget", dataset: { widget: "iframe" } }, h("h2", {}, "Page"), h("p", { class: "error-text" }, describeFailure(err)));
    container.appendChild(box);
    return box;
  }
  if (!url) return null;
  const heading = h("h2", { id: `iframe-h-${conv.id}` }, "Page");
  const frame = h("iframe", {
    src: url,
    title: `Page for this conversation (${new URL(url).host})`,
    sandbox: SANDBOX,
    referrerpolicy: "no-referrer",
    class: "iframe-page",
  });
  const box = h(
    "section",
    { class: "widget iframe-widget", "aria-labelledby": heading.id, dataset: { widget: "iframe" } },
    h("div", { class: "iframe-head" }, heading, h("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "small" }, "Open in a new tab")),
    frame,
  );
  container.appendChild(box);
  return box;
}

/** The widget as the side panel's layout registers it. */
export const iframeWidget = { id: "iframe", title: "Page in iframe", mount: mountIframeWidget };
