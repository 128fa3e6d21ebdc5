// The conversation screen: the message widget (history, composer, templates,
// window state), the bottom bar (status, important, URL, invite, transfer, close)
// and the contact panel beside it.

import { get, post, api, toast, fail, describeFailure, alternativeNames, ApiFailure, isMissingRoute } from "./api.js";
import { h, clear, button, field, select, clock, dateTime, parseTime, items, idOf, pick, debounce, channelLabel, safeHref, fileNameOf } from "./util.js";
import { state, queueOf, customerName, identityId, statusesFor, agentName, upsertConversation, myId, ownerId, queueUrl, hasRoute } from "./state.js";
import { modal, errorBox, busy } from "./ui.js";
import { botPanel } from "./bots.js";
import "./contact.js"; // registers the contact, past conversations and ticket widgets
import { renderSidePanel, registerWidget } from "./widgets.js";
import { ruleText, describeWindow } from "./restrictions.js";
import { mountCalendar } from "./calendar.js";
import { mountRooms } from "./rooms.js";
import { mountArticlesWidget } from "./articles.js";
import { mountIframeWidget } from "./iframe.js";
import { attachmentView, applyAttachmentEvent, uploadFile, pendingView, kindOfUpload } from "./media.js";

registerWidget("articles", { title: "Knowledge articles", order: 40, render: (box, conv, ctx) => mountArticlesWidget(box, conv, { insertText: ctx.insertText }) });
registerWidget("iframe", { title: "Page in iframe", order: 45, render: (box, conv) => mountIframeWidget(box, conv).catch(() => {}) });
registerWidget("calendar", { title: "Calendar", order: 50, render: (box, conv) => mountCalendar(box, { conversation: conv }) });
registerWidget("rooms", { title: "Co-browsing", order: 60, render: (box, conv) => mountRooms(box, conv) });

let current = null; // the conversation screen on display: { id, conv, addItem, refresh... }

const TICKS = {
  queued: ["…", "queued"],
  sent: ["✓", "sent"],
  delivered: ["✓✓", "delivered"],
  read: ["✓✓", "read"],
  failed: ["⚠", "failed"],
};

const EVENT_TEXT = {
  opened: "Conversation opened",
  reopened: "Conversation reopened",
  offered: "Offered to {agent}",
  offer_withdrawn: "Offer withdrawn from {agent}",
  rejected: "{agent} rejected the offer",
  timed_out: "{agent} did not answer in time",
  accepted: "{agent} accepted",
  taken: "{agent} took it from the waiting list",
  transferred: "Transferred {target}",
  invited: "{agent} invited {target}",
  left: "{agent} left",
  left_closed: "{agent} closed their part with status {status}",
  closed: "Closed with status {status}",
  important: "Marked important",
  subscribed: "Customer subscribed",
  unsubscribed: "Customer unsubscribed",
  ticket_assigned: "Ticket {ticket} assigned",
  handed_off: "The bot handed over {target} ({reason})",
  bot_took_over: "Handed to the bot {bot}",
  out_of_hours: "Answered outside business hours (opens {opening})",
  number_changed: "The customer changed their number: they write from {address} now",
};

export function renderConversation(main, conv, { onGone: whenGone, onChanged }) {
  const id = String(conv.id);
  let gone = false;
  const onGone = (message) => {
    if (gone) return;
    gone = true;
    if (current && current.id === id) current = null;
    whenGone(message);
  };
  const queue = queueOf(conv);
  const history = h("ol", { class: "history", "aria-label": "Messages and events", "aria-live": "polite" });
  const olderButton = h("button", { type: "button", class: "quiet older", hidden: true }, "Load older messages");
  const windowBadge = h("span", { class: "window-state", "data-testid": "window-state", role: "status" }, "Checking what may be sent…");
  const header = h(
    "header",
    { class: "widget-head" },
    h("h1", {},
      h("span", { class: "queue-number" }, queue.number ?? ""),
      " ",
      h("span", { class: "queue-name" }, queue.name || queue.id || ""),
      " · ",
      h("span", { class: "customer-name" }, customerName(conv)),
    ),
    h("span", { class: `chip ch-${conv.channel}` }, channelLabel[conv.channel] || conv.channel),
    windowBadge,
    botPanel(conv, { onReturned: () => onGone("Handed back to the bot.") }),
  );

  // composer
  const text = h("textarea", { rows: 3, placeholder: "Type a message. Enter sends, Shift+Enter starts a new line.", "aria-label": "Message" });
  const sendButton = h("button", { type: "button", class: "primary" }, "Send");
  const fileInput = h("input", { type: "file", multiple: true, class: "sr-only", id: `file-${id}`, tabindex: "-1", "aria-hidden": "true" });
  const fileButton = h("button", { type: "button" }, "Select files");
  const attachmentsList = h("ul", { class: "attachments-pending", "aria-label": "Files to send" });
  const templateSelect = h("select", { "aria-label": "Template" }, h("option", { value: "" }, "Insert a template…"));
  const composerError = errorBox();
  const templatePreview = h("div", { class: "template-preview", hidden: true });
  const dropZone = h(
    "div",
    { class: "dropzone" },
    fileInput,
    fileButton,
    h("span", { class: "muted" }, "or drop files here"),
    attachmentsList,
  );
  const composer = h(
    "div",
    { class: "composer" },
    text,
    h("div", { class: "composer-tools" }, dropZone, templateSelect, sendButton),
    templatePreview,
    composerError.el,
  );

  // bottom bar
  const statuses = statusesFor(conv);
  const statusSelect = select([["", "Status…"], ...statuses.map((s) => [s.id, s.name || s.id])], conv.status || conv.status_id || "", { "aria-label": "Status (required to close)", "data-testid": "status" });
  const importantButton = h("button", { type: "button", "aria-pressed": String(Boolean(conv.important)) }, "★ Important");
  const url = safeHref(queueUrl(conv));
  const urlButton = url ? h("a", { class: "button", href: url, target: "_blank", rel: "noopener" }, "Open URL") : h("button", { type: "button", disabled: true, title: "This queue has no URL" }, "Open URL");
  const inviteButton = h("button", { type: "button" }, "Invite");
  const transferButton = h("button", { type: "button" }, "Transfer");
  const leaveButton = h("button", { type: "button", class: "quiet" }, "Leave");
  const closeButton = h("button", { type: "button", class: "danger" }, "Close");
  const barError = errorBox();
  const bar = h("div", { class: "bottom-bar", role: "toolbar", "aria-label": "Conversation actions" }, statusSelect, importantButton, urlButton, inviteButton, transferButton, leaveButton, closeButton, barError.el);

  const widget = h("section", { class: "message-widget", "aria-label": "Message widget" }, header, olderButton, history, composer, bar);
  const side = h("aside", { class: "side-panel", "aria-label": "Widgets" });
  clear(main, h("div", { class: "conversation", dataset: { conversation: id } }, widget, side));

  const seen = new Set();
  let nextCursor = null;
  let olderConversations = [];
  let pendingAttachments = [];
  let eligibility = null;
  let templates = [];

  // leaving: this agent's own close is on its way; its answer says what happened, not the live event it causes
  const screen = { id, conv, addItem, reloadHistory, mergeLatest, refreshWindow, updateDelivery, onGone, onChanged, setConv, leaving: false };
  current = screen;

  function setConv(next) {
    Object.assign(conv, next);
    header.querySelector(".customer-name").textContent = customerName(conv); // a started chat learns the name later
    importantButton.setAttribute("aria-pressed", String(Boolean(conv.important)));
    const mine = String(ownerId(conv)) === String(myId());
    leaveButton.hidden = mine;
  }
  setConv({});

  // ------------------------------------------------------------- history

  function itemKey(item) {
    return `${isMessage(item) ? "m" : "e"}:${item.id ?? `${item.created_at}-${item.kind}`}`;
  }

  function addItem(item, { prepend = false } = {}) {
    const key = itemKey(item);
    const existing = history.querySelector(`[data-key="${CSS.escape(key)}"]`);
    const el = isMessage(item) ? messageEl(item) : eventEl(item);
    el.dataset.key = key;
    if (item.conversation_id !== undefined) el.dataset.conv = String(item.conversation_id);
    el.dataset.at = String(parseTime(item.created_at || item.sent_at)?.getTime() || Date.now());
    if (existing) {
      existing.replaceWith(el);
      return;
    }
    seen.add(key);
    if (prepend) {
      const anchor = history.querySelector("li");
      history.insertBefore(el, anchor);
      return;
    }
    // keep time order even when the socket and the page disagree by a few ms
    const at = Number(el.dataset.at);
    let before = null;
    for (const li of [...history.children].reverse()) {
      if (Number(li.dataset.at) <= at) break;
      before = li;
    }
    history.insertBefore(el, before);
    if (!prepend) history.scrollTop = history.scrollHeight;
  }

  async function reloadHistory() {
    try {
      const page = await get(`conversations/${id}/messages`);
      const list = items(page).slice();
      sortByTime(list);
      clear(history);
      seen.clear();
      for (const item of list) addItem(item);
      markConversations();
      nextCursor = pick(page, "next", "before", "cursor") || null;
      olderConversations = pick(page, "older", "previous_conversations") || [];
      olderButton.hidden = !nextCursor && !olderConversations.length;
      history.scrollTop = history.scrollHeight;
    } catch (err) {
      clear(history, h("li", { class: "error-text" }, `The history could not be loaded: ${describeFailure(err)}`));
    }
  }

  // the history runs on into this customer's earlier conversations: mark where each one starts
  function markConversations() {
    for (const divider of history.querySelectorAll(".divider")) divider.remove();
    let previous = null;
    for (const li of [...history.children]) {
      const conv = li.dataset.conv;
      if (!conv) continue;
      if (conv !== previous && (previous !== null || conv !== id)) {
        history.insertBefore(h("li", { class: "divider", "data-testid": "conversation-divider" }, conv === id ? "This conversation" : `Earlier conversation #${conv}`), li);
      }
      previous = conv;
    }
  }

  // new messages and events: read the newest page again and merge it in place
  async function mergeLatest() {
    try {
      const page = await get(`conversations/${id}/messages`);
      for (const item of items(page)) addItem(item);
      markConversations();
      if (!nextCursor) {
        nextCursor = pick(page, "next") || null;
        olderButton.hidden = !nextCursor;
      }
    } catch {
      // the next event or a reload tries again
    }
  }

  async function loadOlder() {
    try {
      const page = await get(`conversations/${id}/messages?before=${encodeURIComponent(nextCursor || "")}`);
      const list = items(page).slice();
      sortByTime(list);
      for (const item of list.reverse()) addItem(item, { prepend: true });
      markConversations();
      nextCursor = pick(page, "next", "before", "cursor") || null;
      olderButton.hidden = !nextCursor;
      if (!list.length) toast("No older messages.");
      return list.length > 0;
    } catch (err) {
      fail(err, "Older messages");
      return false;
    }
  }

  olderButton.addEventListener("click", () => busy(olderButton, loadOlder));

  // the Past conversations widget opens one (the manual's "Open activity detail"): the history runs on into
  // the customer's earlier conversations, so read older pages until it is there, then bring its start into view
  async function showEarlier(conversationId) {
    const key = String(conversationId);
    for (let pages = 0; pages <= 50; pages++) {
      const first = history.querySelector(`[data-conv="${CSS.escape(key)}"]`);
      if (first) {
        const start = first.previousElementSibling?.classList.contains("divider") ? first.previousElementSibling : first;
        for (const el of history.querySelectorAll(".shown-earlier")) el.classList.remove("shown-earlier");
        start.classList.add("shown-earlier");
        start.scrollIntoView({ block: "start" });
        return true;
      }
      if (!nextCursor || !(await loadOlder())) break;
    }
    toast(`Conversation #${key} is not in this customer's history.`);
    return false;
  }

  function updateDelivery(data) {
    const mid = data.message_id ?? data.id ?? data.message?.id;
    if (mid === undefined) return;
    const el = history.querySelector(`[data-key="m:${CSS.escape(String(mid))}"]`);
    if (!el) return;
    const message = { ...JSON.parse(el.dataset.item || "{}"), ...(data.message || {}), ...data, id: mid };
    if (data.state) message.delivery_state = data.state;
    addItem(message);
  }

  // ------------------------------------------------------------- window state (eligibility)

  async function refreshWindow() {
    const identity = identityId(conv);
    if (identity === undefined) {
      windowBadge.textContent = "Window unknown";
      return;
    }
    try {
      eligibility = await get(`identities/${identity}/eligibility`);
      const w = describeWindow(eligibility);
      windowBadge.textContent = w.text;
      windowBadge.dataset.mode = w.mode;
      windowBadge.dataset.rule = eligibility.rule || "";
      windowBadge.title = eligibility.rule ? ruleText(eligibility.rule, conv.channel) : "";
      text.disabled = w.mode === "templates" || w.mode === "none";
      text.placeholder = w.mode === "free" ? "Type a message. Enter sends, Shift+Enter starts a new line." : w.mode === "tag" ? `Free text is sent with the ${w.tag} tag. Enter sends.` : "Only an approved template may be sent now: pick one below.";
      if (w.mode === "tag") text.disabled = false;
    } catch (err) {
      windowBadge.textContent = isMissingRoute(err) ? "Window rules unavailable on this hub" : `Window: ${err.message}`;
      windowBadge.dataset.mode = "unknown";
    }
  }

  // ------------------------------------------------------------- composer

  let lastRule = null; // the rule of the last refused send, if any

  async function send(body, controls) {
    composerError.clear();
    lastRule = null;
    return busy(controls, async () => {
      try {
        const answer = await post(`conversations/${id}/messages`, body);
        const message = answer?.message || answer;
        if (message && message.id !== undefined) addItem({ direction: "out", author: "agent", created_at: new Date().toISOString(), ...message });
        return true;
      } catch (err) {
        let msg = err.message;
        const alts = err.details?.alternatives;
        if (alts) {
          const names = alternativeNames(alts);
          if (names.length) msg += ` Allowed instead: ${names.join(", ")}.`;
        }
        lastRule = err.details?.rule || err.details?.code || null;
        composerError.show(msg);
        if (err.status === 422) refreshWindow();
        return false;
      }
    });
  }

  async function sendText() {
    const value = text.value.replace(/\s+$/, "");
    if (!value && !pendingAttachments.length) return;
    const body = {};
    if (value) body.text = value;
    if (pendingAttachments.some((a) => !a.upload && !a.url)) return composerError.show("Wait until every file is uploaded.");
    const w = eligibility ? describeWindow(eligibility) : null;
    if (w?.mode === "tag" && w.tag) body.tag = w.tag;
    // every channel takes one file per message: several files go as several messages, the text with the first
    const files = pendingAttachments.slice();
    let first = true;
    do {
      const one = { ...(first ? body : {}), ...(body.tag ? { tag: body.tag } : {}) };
      const a = files[0];
      if (a) one.attachments = [a.upload ? { upload: a.upload } : { kind: a.kind, url: a.url, file_name: a.file_name, mime_type: a.mime_type }];
      let ok = await send(one, [sendButton, text]);
      if (!ok && lastRule === "caption_not_allowed" && one.text && one.attachments) {
        // this file goes without text on its channel (WhatsApp audio, a document through Twilio): the text first, alone
        const { attachments, ...words } = one;
        ok = await send(words, [sendButton, text]);
        if (ok) {
          text.value = "";
          delete words.text;
          ok = await send({ ...words, attachments }, [sendButton, text]);
        }
      }
      if (!ok) {
        renderPending();
        return;
      }
      if (first) text.value = "";
      first = false;
      if (a) pendingAttachments.splice(pendingAttachments.indexOf(a), 1);
      files.shift();
    } while (files.length);
    renderPending();
    text.focus();
  }

  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      sendText();
    }
  });
  sendButton.addEventListener("click", sendText);

  // attachments: the hub takes attachments by URL; a dropped file needs an upload route
  fileButton.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    addFiles([...fileInput.files]);
    fileInput.value = "";
  });
  for (const target of [dropZone, composer]) {
    target.addEventListener("dragover", (ev) => {
      ev.preventDefault();
      dropZone.classList.add("dragging");
    });
    target.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
    target.addEventListener("drop", (ev) => {
      ev.preventDefault();
      ev.stopPropagation(); // the drop zone is inside the composer: one drop, one upload
      dropZone.classList.remove("dragging");
      const files = [...(ev.dataTransfer?.files || [])];
      if (files.length) addFiles(files);
      else {
        const link = ev.dataTransfer?.getData("text/uri-list") || ev.dataTransfer?.getData("text/plain");
        if (link && /^https?:\/\//.test(link.trim())) addLink(link.trim());
      }
    });
  }

  text.addEventListener("paste", (ev) => {
    const files = [...(ev.clipboardData?.files || [])];
    if (files.length) {
      ev.preventDefault();
      addFiles(files);
    }
  });

  async function addFiles(files) {
    composerError.clear();
    await Promise.all(files.map(async (file) => {
      const item = { file_name: file.name, kind: kindOfMime(file.type), progress: 0 };
      pendingAttachments.push(item);
      renderPending();
      try {
        const answer = await uploadFile(file, (share) => {
          item.progress = share;
          if (item.bar) item.bar.value = share;
        });
        Object.assign(item, { upload: answer.id, kind: kindOfUpload(answer.mime), size: answer.size, mime_type: answer.mime });
      } catch (err) {
        pendingAttachments.splice(pendingAttachments.indexOf(item), 1);
        if (err.status === 404 || err.status === 405) askForLink(file); // a hub without uploads: by link
        else composerError.show(err.message);
      }
      renderPending();
    }));
  }

  function askForLink(file) {
    const dlg = modal("Attach by link", { label: "attach-link" });
    const input = h("input", { type: "url", placeholder: "https://…", required: true });
    const error = errorBox();
    dlg.body.append(
      h("p", {}, `This hub sends attachments by link (providers fetch the file from a public URL). Give the link where ${file ? `“${file.name}”` : "the file"} can be downloaded.`),
      field("File URL", input),
      error.el,
    );
    const ok = button("Attach", () => {
      if (!/^https?:\/\//.test(input.value.trim())) return error.show("Give an http(s) link.");
      addLink(input.value.trim(), file);
      dlg.close();
    }, { class: "primary" });
    dlg.footer.append(ok);
    input.focus();
  }

  function addLink(url, file) {
    const name = file?.name || fileNameOf(url) || "file";
    pendingAttachments.push({ kind: kindOfMime(file?.type || guessMime(name)), url, file_name: name, mime_type: file?.type || undefined });
    renderPending();
  }

  function renderPending() {
    clear(attachmentsList);
    pendingAttachments.forEach((a) =>
      attachmentsList.appendChild(pendingView(a, () => {
        pendingAttachments.splice(pendingAttachments.indexOf(a), 1);
        renderPending();
      })),
    );
    if (pendingAttachments.length === 0) attachmentsList.appendChild(h("li", { hidden: true }));
  }
  const linkButton = button("Attach link", () => askForLink(null), { class: "quiet" });
  dropZone.insertBefore(linkButton, dropZone.children[2]);

  // templates: preview the rendered text, then insert it or send it as the template
  async function loadTemplates() {
    try {
      const answer = await get(`templates?channel=${encodeURIComponent(conv.channel || "")}`);
      templates = items(answer).length ? items(answer) : Array.isArray(answer?.templates) ? answer.templates : [];
    } catch (err) {
      templates = [];
      templateSelect.disabled = true;
      templateSelect.title = isMissingRoute(err) ? "This hub has no templates yet" : err.message;
    }
    for (const t of templates) templateSelect.appendChild(h("option", { value: t.name }, t.description ? `${t.name} – ${t.description}` : t.name));
  }

  templateSelect.addEventListener("change", () => previewTemplate(templateSelect.value));

  async function previewTemplate(name) {
    clear(templatePreview);
    templatePreview.hidden = !name;
    if (!name) return;
    const tpl = templates.find((t) => t.name === name) || { name };
    const variables = tpl.variables || {};
    const inputs = {};
    const varsBox = h("div", { class: "template-vars" });
    for (const [key, example] of Object.entries(variables)) {
      const input = h("input", { value: guessVariable(key, conv) ?? "", placeholder: String(example ?? ""), "data-variable": key });
      inputs[key] = input;
      varsBox.appendChild(field(key, input));
    }
    const rendered = h("pre", { class: "rendered", "data-testid": "template-rendered", "aria-live": "polite" }, "Rendering…");
    const error = errorBox();
    const insert = h("button", { type: "button" }, "Insert text");
    const sendTemplate = h("button", { type: "button", class: "primary" }, "Send template");
    const cancel = button("Cancel", () => {
      templateSelect.value = "";
      clear(templatePreview);
      templatePreview.hidden = true;
    }, { class: "quiet" });
    templatePreview.append(h("h3", {}, `Template ${name}`), varsBox, rendered, error.el, h("div", { class: "row" }, insert, sendTemplate, cancel));
    let renderedText = "";
    const values = () => Object.fromEntries(Object.entries(inputs).filter(([, el]) => el.value !== "").map(([k, el]) => [k, el.value]));
    const render = async () => {
      error.clear();
      try {
        const answer = await post(`conversations/${id}/templates/${encodeURIComponent(name)}/render`, { variables: values() });
        renderedText = answer.text ?? answer.rendered ?? "";
        rendered.textContent = renderedText;
        insert.disabled = false;
        sendTemplate.disabled = false;
      } catch (err) {
        rendered.textContent = "";
        error.show(err.message);
        insert.disabled = true;
        sendTemplate.disabled = true;
      }
    };
    for (const input of Object.values(inputs)) input.addEventListener("input", debounce(render, 300));
    insert.addEventListener("click", () => {
      if (text.disabled) {
        error.show("Only the approved template may be sent now; use Send template.");
        return;
      }
      text.value = text.value ? `${text.value}\n${renderedText}` : renderedText;
      templateSelect.value = "";
      templatePreview.hidden = true;
      text.focus();
    });
    sendTemplate.addEventListener("click", async () => {
      if (await send({ template: name, variables: values() }, [sendTemplate, insert])) {
        templateSelect.value = "";
        templatePreview.hidden = true;
      }
    });
    await render();
  }

  // ------------------------------------------------------------- bottom bar

  async function act(path, body, controls, done) {
    barError.clear();
    statusSelect.removeAttribute("aria-invalid");
    return busy(controls, async () => {
      try {
        const answer = await post(`conversations/${id}/${path}`, body);
        await done(answer);
        return true;
      } catch (err) {
        barError.show(describeFailure(err));
        if (path === "close" && err.status === 422) {
          statusSelect.setAttribute("aria-invalid", "true");
          statusSelect.focus();
        }
        return false;
      }
    });
  }

  importantButton.addEventListener("click", () =>
    act("important", { important: !conv.important }, [importantButton], (answer) => {
      const value = pick(answer?.conversation || answer || {}, "important");
      setConv({ important: value === undefined ? !conv.important : Boolean(value) });
      upsertConversation({ id: conv.id, important: conv.important });
      onChanged();
    }),
  );

  closeButton.addEventListener("click", () => {
    const body = statusSelect.value ? { status: statusSelect.value } : {};
    screen.leaving = true;
    act("close", body, [closeButton], (answer) => {
      // one of several agents closes only their own part: the colleagues carry on with the customer
      const after = answer?.conversation || answer || {};
      onGone(after.state === "active" ? "You closed your part; your colleague carries on with the customer." : "Conversation closed.");
    }).then((closed) => {
      if (!closed) screen.leaving = false;
    });
  });

  leaveButton.addEventListener("click", () => act("leave", {}, [leaveButton], () => onGone("You left the conversation.")));

  inviteButton.addEventListener("click", () =>
    chooseTarget("Invite to the conversation", { queues: true, action: "Invite" }, (target) =>
      act("invite", target, [inviteButton], () => {
        toast(`Invited ${target.agent ? agentName(target.agent) : `a member of ${queueOf({ queue: target.queue }).name}`}.`);
        reloadHistory();
      }),
    ),
  );

  transferButton.addEventListener("click", () =>
    chooseTarget("Transfer the conversation", { queues: true, action: "Transfer" }, (target) =>
      act("transfer", target, [transferButton], () => onGone(`Transferred to ${target.agent ? agentName(target.agent) : queueOf({ queue: target.queue }).name || target.queue}.`)),
    ),
  );

  // Text from a side-panel widget, put into the reply at the cursor (the agent still sends it).
  function insertIntoComposer(snippet) {
    const start = text.selectionStart ?? text.value.length;
    const end = text.selectionEnd ?? start;
    const before = text.value.slice(0, start);
    const spacer = before && !/\s$/.test(before) ? " " : "";
    text.value = `${before}${spacer}${snippet}${text.value.slice(end)}`;
    const caret = before.length + spacer.length + snippet.length;
    text.focus();
    text.setSelectionRange(caret, caret);
    text.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // ------------------------------------------------------------- start

  renderSidePanel(side, conv, { onChanged: () => reloadHistory(), insertText: insertIntoComposer, showEarlier });
  reloadHistory();
  refreshWindow();
  loadTemplates();
  get(`conversations/${id}`)
    .then((fresh) => {
      setConv(fresh);
      upsertConversation(fresh);
    })
    .catch(() => {});
  text.focus();
  return screen;
}

// ------------------------------------------------------------------ live updates for the open conversation

// without the event stream: re-read the open conversation as an update would
export function pollConversation() {
  if (current) conversationEvent("conversation.updated", {}, { conversation_id: current.id });
}

export function conversationEvent(kind, data, event) {
  if (!current || !document.querySelector(`.conversation[data-conversation="${CSS.escape(current.id)}"]`)) {
    current = null;
    return;
  }
  const convId = String(event?.conversation_id ?? data?.conversation_id ?? data?.conversation?.id ?? "");
  if (convId !== current.id) return;
  if (kind === "message.attachment") {
    if (!applyAttachmentEvent(data)) current.mergeLatest();
  } else if (kind === "message.delivery") {
    current.updateDelivery(data);
  } else if (kind === "message.created") {
    current.mergeLatest();
    if (data?.direction !== "out") current.refreshWindow();
  } else if (kind.startsWith("conversation")) {
    current.mergeLatest();
    get(`conversations/${current.id}`)
      .then((conv) => {
        if (current?.leaving) return; // our own close: its answer tells the agent
        current?.setConv(conv);
        const me = String(myId());
        const mine = String(ownerId(conv)) === me || (conv.participants || []).some((p) => String(p.agent_id ?? idOf(p.agent)) === me);
        if (conv.state === "closed") current?.onGone("The conversation was closed.");
        else if (!mine) current?.onGone("The conversation is no longer yours (transferred or taken over).");
      })
      .catch((err) => {
        if (err.status === 403 || err.status === 404) current?.onGone("The conversation is no longer yours.");
      });
  }
}

// ------------------------------------------------------------------ rendering pieces

function isMessage(item) {
  if (item.type === "event" || item.item === "event") return false;
  if (item.type === "message" || item.item === "message") return true;
  return item.direction !== undefined || item.delivery_state !== undefined;
}

function sortByTime(list) {
  list.sort((a, b) => (parseTime(a.created_at || a.sent_at)?.getTime() || 0) - (parseTime(b.created_at || b.sent_at)?.getTime() || 0) || (a.id ?? 0) - (b.id ?? 0));
}

function messageEl(m) {
  const direction = m.direction || (m.author === "customer" ? "in" : "out");
  const dstate = m.delivery_state || m.state || (direction === "in" ? "received" : "queued");
  const body = h("div", { class: "bubble" });
  if (m.template_name || m.template) body.appendChild(h("span", { class: "chip template-chip" }, `template ${m.template_name || m.template}${m.template_version ? ` v${m.template_version}` : ""}`));
  if (m.text) body.appendChild(h("p", { class: "text" }, m.text));
  else if (m.kind && m.kind !== "text" && !(m.attachments || []).length) body.appendChild(h("p", { class: "muted" }, `[${m.kind}]`));
  for (const a of m.attachments || []) body.appendChild(attachmentView(a));
  if (m.location) body.appendChild(h("p", {}, `Location: ${m.location.name || ""} ${m.location.latitude}, ${m.location.longitude}`));
  const meta = h("div", { class: "meta" }, h("time", { datetime: m.created_at || m.sent_at || "" }, dateTime(m.created_at || m.sent_at)));
  if (direction === "out") {
    meta.prepend(h("span", { class: "author" }, m.agent ? agentName(m.agent) : m.agent_id ? agentName(m.agent_id) : m.author === "system" ? "system" : ""));
    const [symbol, label] = TICKS[dstate] || ["", dstate];
    meta.appendChild(h("span", { class: `tick tick-${dstate}`, "data-testid": "tick", "data-state": dstate, title: label, "aria-label": label }, symbol, h("span", { class: "tick-label" }, ` ${label}`)));
  }
  if (m.tag) meta.appendChild(h("span", { class: "chip" }, m.tag));
  const li = h("li", { class: `msg msg-${direction}`, dataset: { state: dstate } }, body, meta);
  if (dstate === "failed") li.appendChild(h("p", { class: "failure", role: "note" }, `Not delivered: ${m.error_reason || "the provider refused it"}${m.error_code ? ` (code ${m.error_code})` : ""}`));
  li.dataset.item = JSON.stringify({ ...m, delivery_state: dstate });
  return li;
}

function eventEl(e) {
  const data = e.data || {};
  const kind = e.kind || e.event || "event";
  const template = (kind === "left" && data.closed ? EVENT_TEXT.left_closed : EVENT_TEXT[kind]) || kind.replace(/_/g, " ");
  const values = {
    agent: agentName(e.agent ?? e.agent_id ?? data.agent ?? data.agent_id) || "An agent",
    target: data.to_agent || data.agent_to || data.target_agent ? `to ${agentName(data.to_agent ?? data.agent_to ?? data.target_agent)}` : data.to_queue || data.queue ? `to queue ${queueOf({ queue: data.to_queue ?? data.queue }).name}` : data.invited ? agentName(data.invited) : "",
    status: data.status_name || data.status || "",
    ticket: data.ticket_id ?? data.ticket ?? "",
    reason: (data.reason || "").replace(/_/g, " "),
    bot: data.bot || "",
    opening: data.opening || "",
    address: data.new_address || "",
  };
  if (kind === "invited") values.target = agentName(data.agent_id ?? data.invited ?? data.to_agent ?? data.agent) || (data.queue_id || data.queue ? `a member of ${queueOf({ queue: data.queue_id ?? data.queue }).name}` : "");
  let line = template.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "").replace(/\s+/g, " ").trim();
  if (data.reason === "deactivated") line += " (account deactivated)";
  const li = h("li", { class: `event event-${kind}` }, h("span", {}, line), h("time", { datetime: e.created_at || "" }, clock(e.created_at)));
  return li;
}

function guessVariable(key, conv) {
  const k = key.toLowerCase();
  if (/(^|_)(customer|contact|first)?_?name$/.test(k) && !/agent/.test(k)) return customerName(conv);
  if (/agent/.test(k)) return state.me?.display_name || state.me?.login;
  return null;
}

function kindOfMime(mime) {
  if (!mime) return "file";
  if (mime.startsWith("image/")) return "image";
  if (mime.startsWith("video/")) return "video";
  if (mime.startsWith("audio/")) return "audio";
  return "file";
}

function guessMime(name) {
  const ext = (name.split(".").pop() || "").toLowerCase();
  return { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp", mp4: "video/mp4", mp3: "audio/mpeg", ogg: "audio/ogg", pdf: "application/pdf" }[ext] || "";
}

// ------------------------------------------------------------------ invite / transfer target picker

function chooseTarget(title, { queues, action }, onChoose) {
  const dlg = modal(title, { label: action.toLowerCase() });
  const search = h("input", { type: "search", placeholder: "Search agents" + (queues ? " or queues" : ""), "aria-label": "Search" });
  const list = h("div", { class: "choice-list", role: "radiogroup", "aria-label": queues ? "Agents and queues" : "Agents" });
  const error = errorBox();
  const go = h("button", { type: "button", class: "primary", disabled: true }, action);
  const name = `target-${Math.random().toString(36).slice(2, 7)}`;
  let chosen = null;
  const me = String(myId());
  const options = [
    ...state.agents.filter((a) => String(a.id) !== me && a.active !== false).map((a) => ({ key: `agent:${a.id}`, label: a.display_name || a.login, sub: `agent · ${a.presence?.state || a.presence || ""}`, target: { agent: a.id } })),
    ...(queues ? state.queues.map((q) => ({ key: `queue:${q.id}`, label: `${q.number ?? ""} ${q.name}`.trim(), sub: "queue", target: { queue: q.id } })) : []),
  ];
  const render = () => {
    clear(list);
    const q = search.value.trim().toLowerCase();
    const shown = options.filter((o) => !q || o.label.toLowerCase().includes(q) || o.sub.includes(q));
    if (!shown.length) list.appendChild(h("p", { class: "muted" }, "No match."));
    for (const o of shown) {
      const radio = h("input", { type: "radio", name, value: o.key, checked: chosen?.key === o.key });
      radio.addEventListener("change", () => {
        chosen = o;
        go.disabled = false;
      });
      list.appendChild(h("label", { class: "choice" }, radio, h("span", {}, o.label), h("small", { class: "muted" }, ` ${o.sub}`)));
    }
  };
  search.addEventListener("input", render);
  // agents do not get the agent list: they name a colleague by login
  const byLogin = h("input", { placeholder: "colleague's login", "aria-label": "Agent login", autocomplete: "off" });
  byLogin.addEventListener("input", () => {
    if (byLogin.value.trim()) {
      chosen = { key: `login:${byLogin.value.trim()}`, target: { agent: byLogin.value.trim() } };
      for (const r of list.querySelectorAll("input[type=radio]")) r.checked = false;
      go.disabled = false;
    } else if (chosen?.key.startsWith("login:")) {
      chosen = null;
      go.disabled = true;
    }
  });
  go.addEventListener("click", async () => {
    if (!chosen) return;
    const ok = await onChoose(chosen.target);
    if (ok) dlg.close();
    else error.show(document.querySelector(".bottom-bar .error-text")?.textContent || "Refused.");
  });
  dlg.body.append(search, list, field("Or an agent by login", byLogin), error.el);
  dlg.footer.append(go);
  render();
  search.focus();
}
