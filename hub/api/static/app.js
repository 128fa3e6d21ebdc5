// The channelhub console: login, the shell (top bar, tabs, offers, waiting list)
// and the switch between the agent desk and the admin and supervisor screens.
// Every change is shown as done only after the hub answered it.

import { api, get, post, put, setCsrf, toast, fail, whenUnauthenticated, ApiFailure, beginSession, endSession } from "./js/api.js";
import * as live from "./js/live.js";
import { h, clear, button, field, select, since, duration, parseTime, items, idOf, channelLabel, throttle } from "./js/util.js";
import {
  state, changed, subscribe, isAdmin, isSupervisor, myId, presenceOf, queueOf, customerName, companyOf,
  offeredTo, offerTimes, ownerId, loadCatalogue, upsertConversation, dropConversation, tryGet, queueUrl, hasRoute,
} from "./js/state.js";
import { modal, errorBox, busy, beep } from "./js/ui.js";
import { renderConversation, conversationEvent, pollConversation } from "./js/conversation.js";
import { openOutbound } from "./js/outbound.js";
import { onNavigate, viewFromHash, hashOf } from "./js/nav.js";
import { renderAdmin } from "./js/admin.js";
import { renderAudit } from "./js/audit.js";
import { renderTemplates } from "./js/templates.js";
import { renderArticlePage } from "./js/articles.js";
import { renderArticlesAdmin } from "./js/articles-admin.js";
import { renderSupervisor, supervisorEvent } from "./js/supervisor.js";
import { renderContacts } from "./js/contacts.js";
import { renderTicketsScreen } from "./js/tickets.js";
import { renderContactPage } from "./js/contact-page.js";
import { renderTicketPage } from "./js/ticket-page.js";
import { openContact } from "./js/contact.js";
import { forgetLayout } from "./js/widgets.js";
import { startReminders, stopReminders } from "./js/calendar.js";
import { botButton } from "./js/bots.js";
import { renderReports } from "./js/reports.js";

const root = document.getElementById("app");
const STORAGE = "channelhub.session";
let shell = null;
let tickTimer = null;
let pollTimer = null;
let unsubscribeLive = null;

// ------------------------------------------------------------------ boot + login

async function boot() {
  const saved = JSON.parse(sessionStorage.getItem(STORAGE) || "null");
  if (saved?.csrf) setCsrf(saved.csrf);
  whenUnauthenticated(() => {
    if (state.me) {
      toast("Your session has ended. Log in again.", "error");
      teardown();
      showLogin();
    }
  });
  // without a session from this tab there is nothing to resume: show the login at once
  if (!saved) return showLogin();
  try {
    const me = await get("me", { quiet401: true });
    await startShell(me);
  } catch (err) {
    sessionStorage.removeItem(STORAGE);
    if (err instanceof ApiFailure && err.status === 404) return showLogin("This hub does not serve the agent API yet.");
    showLogin();
  }
}

function showLogin(notice) {
  root.removeAttribute("aria-busy");
  const loginInput = h("input", { name: "login", autocomplete: "username", required: true, autofocus: true });
  const passwordInput = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = errorBox();
  if (notice) error.show(notice);
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h(
    "form",
    { class: "login-card", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "channelhub"),
    h("p", { class: "muted" }, "Messenger, WhatsApp and Viber in one desk."),
    field("Login", loginInput),
    field("Password", passwordInput),
    error.el,
    submit,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.clear();
    await busy(submit, async () => {
      try {
        beginSession();
        const answer = await post("auth/login", { login: loginInput.value.trim(), password: passwordInput.value }, { quiet401: true });
        setCsrf(answer.csrf_token || answer.csrf);
        sessionStorage.setItem(STORAGE, JSON.stringify({ csrf: answer.csrf_token || answer.csrf, token: answer.token }));
        const me = await get("me");
        await startShell(me);
      } catch (err) {
        error.show(err.message);
        passwordInput.select();
      }
    });
  });
  clear(root, h("main", { id: "main", class: "login" }, form));
  loginInput.focus();
}

async function logout() {
  // stop listening first: nothing may ask the hub anything once the session ends
  live.stop();
  clearInterval(pollTimer);
  scheduleRefresh.cancel();
  await endSession();
  try {
    await post("auth/logout", {});
  } catch (err) {
    if (!(err instanceof ApiFailure) || err.status !== 401) {
      fail(err, "Logout");
      beginSession();
      live.start();
      return;
    }
  }
  sessionStorage.removeItem(STORAGE);
  setCsrf(null);
  teardown();
  showLogin("You are logged out.");
}

function teardown() {
  live.stop();
  stopReminders();
  if (unsubscribeLive) unsubscribeLive();
  clearInterval(tickTimer);
  clearInterval(pollTimer);
  scheduleRefresh.cancel();
  state.me = null;
  state.conversations.clear();
  state.openTabs = [];
  state.waiting = [];
  state.view = "desk";
  forgetLayout(); // the next agent to log in here has a layout of their own
  document.querySelectorAll("dialog").forEach((d) => d.close());
}

// ------------------------------------------------------------------ the shell

async function startShell(me) {
  state.me = me;
  root.removeAttribute("aria-busy");
  try {
    await loadCatalogue();
  } catch (err) {
    fail(err, "Loading queues and statuses");
  }
  shell = buildShell();
  clear(root, shell.el);
  await refreshConversations();
  unsubscribeLive = live.onEvent(onLiveEvent);
  live.onStatus((s) => {
    shell.connection.textContent = { live: "Live", connecting: "Connecting…", reconnecting: "Catching up…", offline: "Offline – reconnecting" }[s] || s;
    shell.connection.dataset.state = s;
    if (s === "live") refreshConversations(); // catch-up also covers anything the socket cannot replay
  });
  clearInterval(tickTimer);
  clearInterval(pollTimer);
  if (hasRoute("GET", "/api/v1/ws")) live.start();
  else {
    // no event stream on this hub: poll, and say so
    shell.connection.textContent = "No live updates (polling)";
    shell.connection.dataset.state = "polling";
    pollTimer = setInterval(() => {
      refreshConversations().catch(() => {});
      pollConversation();
      supervisorEvent("queue.poll");
    }, 3000);
  }
  tickTimer = setInterval(tick, 1000);
  startReminders({ sound: () => state.sound }); // calendar reminders (js/calendar.js)
  // a record's link (#contact/12, #ticket/7, an article's as "Insert link" writes it) opens that page
  show(viewFromHash(window.location.hash) || state.view || "desk");
}

function buildShell() {
  const presence = buildPresence();
  const waitingButton = h("button", { type: "button", class: "badge-button", "aria-haspopup": "dialog", onclick: openWaiting }, "Waiting ", h("span", { class: "badge", "data-testid": "waiting-count" }, "0"));
  const nav = h("nav", { class: "main-nav", "aria-label": "Screens" });
  const navItems = [["desk", "Desk"], ["contacts", "Contacts"], ["tickets", "Tickets"]];
  if (isSupervisor()) navItems.push(["supervisor", "Overview"]);
  if (isSupervisor()) navItems.push(["reports", "Reports"]);
  if (isAdmin()) navItems.push(["templates", "Templates"], ["admin", "Admin"]);
  if (isAdmin()) navItems.push(["audit", "Audit log"]);
  if (isAdmin()) navItems.push(["articles", "Articles"]);
  for (const [view, label] of navItems) nav.appendChild(h("button", { type: "button", dataset: { view }, onclick: () => show(view) }, label));
  const newMessage = h("div", { class: "new-message", role: "group", "aria-label": "Send a new message" });
  for (const channel of channelsAvailable()) {
    newMessage.appendChild(h("button", { type: "button", class: `channel-button ch-${channel}`, title: `Send a new ${channelLabel[channel]} message`, onclick: () => openOutbound({ channel }) }, `+ ${channelLabel[channel]}`));
  }
  const soundToggle = h("button", { type: "button", class: "icon-button", "aria-pressed": String(state.sound), title: "Sound on new offers and on new messages in conversations not on screen", onclick: () => {
    state.sound = !state.sound;
    localStorage.setItem("channelhub.sound", state.sound ? "on" : "off");
    soundToggle.setAttribute("aria-pressed", String(state.sound));
    if (state.sound) beep();
  } }, "Sound");
  const connection = h("span", { class: "connection", dataset: { state: "connecting" }, role: "status" }, "Connecting…");
  const who = h("span", { class: "who" }, state.me.display_name || state.me.login, h("small", {}, ` · ${state.me.role}`));
  const topbar = h(
    "header",
    { class: "topbar" },
    h("span", { class: "brand" }, "channelhub"),
    nav,
    newMessage,
    h("div", { class: "spacer" }),
    waitingButton,
    botButton({ onTaken: tookFromBot }),
    presence.el,
    soundToggle,
    connection,
    who,
    button("Log out", logout, { class: "quiet" }),
  );
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Open conversations" });
  const main = h("main", { id: "main", class: "view", tabindex: "-1" });
  const offers = h("section", { class: "offers", "aria-label": "Incoming offers", "aria-live": "assertive" });
  const el = h("div", { class: "shell" }, topbar, tabs, main, offers);
  return { el, tabs, main, offers, waitingButton, presence, connection, nav };
}

function channelsAvailable() {
  const fromAccounts = [...new Set(state.accounts.map((a) => a.channel).filter(Boolean))];
  return fromAccounts.length ? fromAccounts : ["whatsapp", "messenger", "viber"];
}

// ------------------------------------------------------------------ presence

function buildPresence() {
  const stateSelect = select([["ready", "Ready"], ["paused", "Paused"], ["offline", "Offline"]], presenceOf(state.me).state, { "aria-label": "Presence", "data-testid": "presence" });
  const reason = h("input", { placeholder: "Pause reason", "aria-label": "Pause reason", list: "pause-reasons", size: 12 });
  const reasons = h("datalist", { id: "pause-reasons" }, ["Break", "Lunch", "Meeting", "Training"].map((r) => h("option", { value: r })));
  const apply = h("button", { type: "button", class: "quiet" }, "Set");
  const badge = h("span", { class: "presence-badge", "data-testid": "presence-badge" });
  const el = h("div", { class: "presence", role: "group", "aria-label": "Presence" }, stateSelect, reason, reasons, apply, badge);
  const sync = () => {
    const p = presenceOf(state.me);
    stateSelect.value = p.state;
    reason.hidden = stateSelect.value !== "paused";
    apply.hidden = true;
    el.dataset.state = p.state;
    badge.textContent = p.state === "paused" ? `Paused: ${p.reason || "pause"}${p.paid === false ? " (unpaid)" : ""}${p.since ? ` · ${since(p.since)}` : ""}` : p.state === "ready" ? "Ready" : "Offline";
  };
  const send = async () => {
    const body = { state: stateSelect.value };
    if (body.state === "paused") body.reason = reason.value.trim() || "Break";
    await busy([stateSelect, apply], async () => {
      try {
        const answer = await put("me/presence", body);
        state.me = { ...state.me, ...(answer?.agent || answer) };
      } catch (err) {
        fail(err, "Presence");
      }
      sync();
    });
  };
  stateSelect.addEventListener("change", () => {
    reason.hidden = stateSelect.value !== "paused";
    if (stateSelect.value === "paused") {
      apply.hidden = false;
      reason.focus();
    } else send();
  });
  reason.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") send();
  });
  apply.addEventListener("click", send);
  sync();
  return { el, sync };
}

// ------------------------------------------------------------------ conversations

export async function refreshConversations() {
  if (!state.me) return;
  const [offered, active, waiting] = await Promise.all([
    tryGet("conversations?state=offered", { items: [] }),
    tryGet("conversations?state=active", { items: [] }),
    tryGet("conversations?state=waiting", { items: [] }),
  ]).catch((err) => {
    fail(err, "Loading conversations");
    return [{ items: [] }, { items: [] }, { items: [] }];
  });
  const me = String(myId());
  const seen = new Set();
  for (const conv of [...items(offered), ...items(active)]) {
    const mine = String(offeredTo(conv)) === me || String(ownerId(conv)) === me || isParticipant(conv, me);
    if (!mine) continue;
    upsertConversation(conv);
    seen.add(String(conv.id));
    if (conv.state === "active" && !state.openTabs.includes(String(conv.id))) state.openTabs.push(String(conv.id));
  }
  for (const key of [...state.conversations.keys()]) {
    const conv = state.conversations.get(key);
    if (!seen.has(key) && conv.state !== "closed") {
      // no longer mine (transferred, closed elsewhere, offer withdrawn); keep an open tab visible until the view refreshes
      if (state.view === `conv:${key}`) continue;
      dropConversation(key);
    }
  }
  // the manual: a message "being routed to one of your colleagues" is among the Waiting activities too, to
  // accept from there (the hub lets a queue's member take it while it is offered to someone else)
  const routedToColleagues = items(offered).filter((c) => {
    const to = offeredTo(c);
    return to !== undefined && to !== null && String(to) !== me;
  });
  state.waiting = [...items(waiting), ...routedToColleagues];
  if (state.missing.has("conversations")) state.apiMissing = true;
  renderChrome();
}

function isParticipant(conv, me) {
  const list = conv.participants || [];
  return list.some((p) => String(idOf(p.agent ?? p.agent_id ?? p)) === me && !p.left_at);
}

async function reloadConversation(id) {
  try {
    const conv = await get(`conversations/${id}`);
    return upsertConversation(conv);
  } catch (err) {
    if (err.status === 403 || err.status === 404) {
      dropConversation(id);
      return null;
    }
    throw err;
  }
}

// Events: offer, offer.withdrawn, conversation.updated (for its participants), message.created,
// message.delivery, agent.presence (each with a sequence number); queue.waiting (how a queue's waiting list
// stands, at most a few times a second per queue, no sequence number).
function onLiveEvent(kind, data, event) {
  if (!state.me) return;
  data = data || {};
  const convId = event?.conversation_id ?? data.conversation_id ?? data.conversation?.id;
  const me = String(myId());
  const forMe = event?.agent_id === undefined || event?.agent_id === null || String(event.agent_id) === me;
  if (kind === "agent.presence" || /presence/.test(kind)) {
    const who = event?.agent_id ?? data.agent_id ?? data.agent?.id;
    if (String(who) === me) {
      get("me").then((fresh) => {
        state.me = fresh;
        shell.presence.sync();
        renderChrome();
      }).catch(() => {});
    }
  } else if (kind === "offer") {
    if (forMe && convId !== undefined) {
      reloadConversation(convId).then((conv) => {
        if (conv && conv.state === "offered") {
          if (state.sound) notify("offer", String(convId));
          renderChrome();
        }
      }).catch(() => {});
    }
  } else if (kind === "offer.withdrawn") {
    if (forMe && convId !== undefined) {
      const c = state.conversations.get(String(convId));
      if (c && c.state === "offered") dropConversation(convId);
      if (data.reason && /timeout|timed|missed/.test(data.reason)) toast("The offer timed out and was passed on.");
    }
  } else if (kind === "resync") {
    // the hub could not replay everything: read the state again
    refreshConversations().catch(() => {});
    pollConversation();
  } else if (kind.startsWith("conversation") || kind === "queue.waiting") {
    scheduleRefresh();
  } else if (kind === "message.created" && convId !== undefined) {
    const key = String(convId);
    if (state.conversations.has(key) && state.view !== `conv:${key}` && data.direction !== "out") {
      flashTab(key);
      if (state.sound) notify("message", key); // a customer wrote in a conversation not on screen
    }
  }
  conversationEvent(kind, data, event);
  supervisorEvent(kind, data, event);
  renderChrome();
}

// a busy queue updates several times a second; the lists are read again at most once a second
const scheduleRefresh = throttle(() => refreshConversations().catch(() => {}), 1000);

// every notification sound played, newest last: window.channelhubSounds lets a test (or an add-on) see them
window.channelhubSounds = window.channelhubSounds || [];
function notify(reason, conversation) {
  window.channelhubSounds.push({ reason, conversation, at: Date.now() });
  beep();
}

const flashing = new Set();
function flashTab(key) {
  flashing.add(key);
  renderTabs();
}

// ------------------------------------------------------------------ chrome: tabs, offers, waiting badge

function renderChrome() {
  if (!shell) return;
  renderTabs();
  renderOffers();
  shell.waitingButton.querySelector(".badge").textContent = String(state.waiting.length);
  shell.waitingButton.classList.toggle("has-waiting", state.waiting.length > 0);
  for (const b of shell.nav.querySelectorAll("button")) b.setAttribute("aria-current", state.view === b.dataset.view ? "page" : "false");
  if (state.view === "desk") renderDesk();
  if (followWaiting) followWaiting();
}

function renderTabs() {
  const tabs = shell.tabs;
  clear(tabs);
  const open = state.openTabs.map((k) => state.conversations.get(k)).filter(Boolean);
  if (!open.length) tabs.appendChild(h("span", { class: "muted tabs-empty" }, "No open conversations"));
  for (const conv of open) {
    const key = String(conv.id);
    const selected = state.view === `conv:${key}`;
    if (selected) flashing.delete(key);
    tabs.appendChild(
      h(
        "button",
        {
          type: "button",
          role: "tab",
          class: `tab ch-${conv.channel}${flashing.has(key) ? " flash" : ""}${conv.important ? " important" : ""}`,
          "aria-selected": String(selected),
          dataset: { conversation: key },
          title: `${customerName(conv)} · ${queueOf(conv).name || ""}`,
          onclick: () => (selected ? show(state.previousView && !state.previousView.startsWith("conv:") ? state.previousView : "desk") : show(`conv:${key}`)),
        },
        h("span", { class: "tab-channel" }, channelLabel[conv.channel]?.[0] || "?"),
        customerName(conv),
        flashing.has(key) ? h("span", { class: "sr-only" }, " (new message)") : null,
      ),
    );
  }
}

function renderOffers() {
  const box = shell.offers;
  const me = String(myId());
  const offers = [...state.conversations.values()].filter((c) => c.state === "offered" && (offeredTo(c) === undefined || String(offeredTo(c)) === me));
  const present = new Set(offers.map((c) => String(c.id)));
  for (const card of [...box.children]) if (!present.has(card.dataset.conversation)) card.remove();
  for (const conv of offers) {
    if (box.querySelector(`[data-conversation="${CSS.escape(String(conv.id))}"]`)) continue;
    box.appendChild(offerCard(conv));
  }
  tickOffers();
}

function offerCard(conv) {
  const queue = queueOf(conv);
  const accept = h("button", { type: "button", class: "accept" }, "Accept");
  const reject = h("button", { type: "button", class: "reject" }, "Reject");
  const error = errorBox();
  const nameButton = h("button", { type: "button", class: "link", title: "Open the contact", onclick: () => openContact(conv) }, customerName(conv));
  const company = companyOf(conv);
  const urlButton = queueUrl(conv) ? h("a", { class: "button white", href: queueUrl(conv), target: "_blank", rel: "noopener" }, "Open URL") : null;
  const card = h(
    "article",
    { class: "offer-card", dataset: { conversation: String(conv.id) }, "aria-label": `Offer from ${customerName(conv)}` },
    h("header", {}, h("strong", {}, "Incoming ", channelLabel[conv.channel] || conv.channel || "message")),
    h("p", { class: "offer-customer" }, nameButton, company ? [" · ", h("button", { type: "button", class: "link", onclick: () => openContact(conv) }, company)] : null),
    h("dl", { class: "offer-facts" },
      h("dt", {}, "Queue"), h("dd", {}, `${queue.number ? `${queue.number} ` : ""}${queue.name || ""}`),
      h("dt", {}, "In queue"), h("dd", { "data-since": conv.waiting_since || "" }, since(conv.waiting_since)),
      h("dt", {}, "Offered"), h("dd", { "data-since": offerTimes(conv).offeredAt || "" }, since(offerTimes(conv).offeredAt)),
    ),
    h("p", { class: "countdown", "data-deadline": offerTimes(conv).deadline || "", role: "timer" }),
    error.el,
    h("div", { class: "offer-actions" }, accept, reject, urlButton),
  );
  accept.addEventListener("click", () => answerOffer(conv, "accept", [accept, reject], error));
  reject.addEventListener("click", () => answerOffer(conv, "reject", [accept, reject], error));
  return card;
}

async function answerOffer(conv, action, controls, error) {
  error.clear();
  await busy(controls, async () => {
    try {
      const answer = await post(`conversations/${conv.id}/${action}`, {});
      if (action === "accept") {
        const updated = upsertConversation({ ...(answer?.conversation || answer || {}), id: conv.id, state: "active" });
        if (updated && !state.openTabs.includes(String(conv.id))) state.openTabs.push(String(conv.id));
        show(`conv:${conv.id}`);
      } else {
        dropConversation(conv.id);
        toast("Offer rejected; it goes to the next agent.");
      }
    } catch (err) {
      error.show(err.message);
      if (err.status === 409 || err.status === 404 || err.status === 403) setTimeout(() => { dropConversation(conv.id); renderChrome(); }, 3000);
    }
  });
  renderChrome();
}

function tickOffers() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-since]")) if (el.dataset.since) el.textContent = since(el.dataset.since, now);
  for (const el of document.querySelectorAll(".countdown[data-deadline]")) {
    const deadline = parseTime(el.dataset.deadline);
    if (!deadline) {
      el.textContent = "";
      continue;
    }
    const left = (deadline.getTime() - now) / 1000;
    el.textContent = left > 0 ? `Answer within ${duration(left)}` : "Time is up";
    el.classList.toggle("urgent", left < 10);
  }
}

function tick() {
  tickOffers();
}

// ------------------------------------------------------------------ waiting list

function tookFromBot(conv) {
  upsertConversation({ ...conv, state: "active" });
  if (!state.openTabs.includes(String(conv.id))) state.openTabs.push(String(conv.id));
  show(`conv:${conv.id}`);
}

// the open Waiting activities dialog's refresh, so that it follows the list live (a colleague accepts, a customer
// starts waiting) instead of showing what was waiting when it opened
let followWaiting = null;

async function openWaiting() {
  const dlg = modal("Waiting activities", { wide: true, label: "waiting", onClose: () => { followWaiting = null; } });
  const list = h("ul", { class: "list" });
  dlg.body.appendChild(list);
  let shown = null;
  const render = () => {
    const waiting = [...state.waiting].sort((a, b) => (parseTime(a.waiting_since) || 0) - (parseTime(b.waiting_since) || 0));
    const key = waiting.map((c) => `${c.id}:${c.state}`).join(",");
    if (key === shown) return; // unchanged: keep the rows (and an error shown on one)
    shown = key;
    clear(list);
    if (!waiting.length) list.appendChild(h("li", { class: "muted" }, "Nobody is waiting in your queues."));
    for (const conv of waiting) {
      const error = errorBox();
      const accept = h("button", { type: "button", class: "primary" }, "Accept");
      accept.addEventListener("click", () =>
        busy(accept, async () => {
          try {
            const answer = await post(`conversations/${conv.id}/take`, {});
            upsertConversation({ ...conv, ...(answer?.conversation || answer || {}), state: "active" });
            if (!state.openTabs.includes(String(conv.id))) state.openTabs.push(String(conv.id));
            dlg.close();
            show(`conv:${conv.id}`);
          } catch (err) {
            error.show(err.message);
            refreshConversations();
          }
        }),
      );
      const queue = queueOf(conv);
      list.appendChild(
        h("li", { class: "list-row", dataset: { conversation: String(conv.id) } },
          h("span", { class: `chip ch-${conv.channel}` }, channelLabel[conv.channel] || conv.channel),
          h("strong", {}, customerName(conv)),
          h("span", { class: "muted" }, `${queue.number ? `${queue.number} ` : ""}${queue.name || ""}`),
          h("span", { "data-since": conv.waiting_since || "" }, since(conv.waiting_since)),
          conv.state === "offered" ? h("span", { class: "chip" }, "offered") : null,
          accept,
          error.el,
        ),
      );
    }
  };
  followWaiting = render;
  await refreshConversations();
  render();
}

// ------------------------------------------------------------------ views

onNavigate(show); // widgets that app.js imports switch views through js/nav.js

export function show(view) {
  if (!shell) return;
  if (view !== state.view) state.previousView = state.view;
  state.view = view;
  const main = shell.main;
  clear(main);
  main.className = `view view-${view.split(":")[0]}`;
  if (view.startsWith("conv:")) {
    const key = view.slice(5);
    flashing.delete(key);
    const conv = state.conversations.get(key);
    if (!conv) {
      reloadConversation(key).then((c) => (c ? show(view) : show("desk"))).catch((err) => fail(err));
      main.appendChild(h("p", { class: "muted" }, "Loading…"));
    } else {
      renderConversation(main, conv, {
        onGone: (message) => {
          dropConversation(key);
          if (message) toast(message);
          show("desk");
        },
        onChanged: () => renderChrome(),
      });
    }
  } else if (view === "contacts") renderContacts(main);
  else if (view === "tickets") renderTicketsScreen(main);
  else if (view === "supervisor") renderSupervisor(main);
  else if (view === "reports") renderReports(main);
  else if (view === "templates") renderTemplates(main);
  else if (view === "admin") renderAdmin(main);
  else if (view === "audit") renderAudit(main);
  else if (view === "articles") renderArticlesAdmin(main);
  else if (view.startsWith("article:")) renderArticlePage(main, view.slice(8), { onBack: () => goBack(view) });
  else if (view.startsWith("contact:")) renderContactPage(main, view.slice(8), { onBack: () => goBack(view) });
  else if (view.startsWith("ticket:")) renderTicketPage(main, view.slice(7), { onBack: () => goBack(view) });
  else renderDesk();
  // the address names a record's page, so that a reload or a copied link opens it again (no new history entry)
  const hash = hashOf(view);
  if (window.location.hash !== hash) history.replaceState(null, "", hash || `${window.location.pathname}${window.location.search}`);
  renderChrome();
}

function goBack(view) {
  show(state.previousView && state.previousView !== view ? state.previousView : "desk");
}

// a link to a record (#contact/12, #ticket/7, #article/3) opens its page
window.addEventListener("hashchange", () => {
  const view = viewFromHash(window.location.hash);
  if (view && state.me && view !== state.view) {
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close(); // the link may sit in one
    show(view);
  }
});

function renderDesk() {
  const main = shell.main;
  if (state.view !== "desk") return;
  const mine = state.openTabs.map((k) => state.conversations.get(k)).filter(Boolean);
  const focused = document.activeElement && main.contains(document.activeElement);
  if (focused && main.dataset.rendered === "desk") return; // do not steal focus while the agent works here
  main.dataset.rendered = "desk";
  clear(
    main,
    h("section", { class: "panel" },
      h("h1", {}, "My conversations"),
      mine.length
        ? h("ul", { class: "list" }, mine.map((conv) => h("li", { class: "list-row" },
            h("span", { class: `chip ch-${conv.channel}` }, channelLabel[conv.channel] || conv.channel),
            button(customerName(conv), () => show(`conv:${conv.id}`), { class: "link" }),
            h("span", { class: "muted" }, queueOf(conv).name || ""),
            conv.important ? h("span", { class: "chip important" }, "important") : null,
          )))
        : h("p", { class: "muted" }, presenceOf(state.me).state === "ready" ? "You are ready. Offers appear in the top right corner." : "Set yourself Ready to receive offers, or take a conversation from the waiting list."),
    ),
    h("section", { class: "panel" },
      h("h2", {}, "Waiting in your queues"),
      state.waiting.length
        ? h("p", {}, `${state.waiting.length} waiting. `, button("Open the waiting list", openWaiting, { class: "link" }))
        : h("p", { class: "muted" }, "Nobody is waiting."),
    ),
    state.apiMissing ? h("p", { class: "notice" }, "This hub does not serve the conversation API yet; offers and conversations will appear once it does.") : null,
  );
}

subscribe(() => renderChrome());
window.addEventListener("unhandledrejection", (ev) => {
  ev.preventDefault();
  if (ev.reason?.code !== "logged_out") fail(ev.reason);
});

export { changed, api };
boot();
