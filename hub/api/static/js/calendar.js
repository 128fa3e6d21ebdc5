// The Calendar widget: the agent's own scheduled events (follow-ups). A month view where days with
// events are coloured and the selected day is bold, that day's list, a follow-up created from the
// open conversation (and its ticket), the personal iCalendar feed; and the reminders on the console.
//
// mountCalendar(container, { conversation }) adds the widget to a side panel; scheduleFollowUp({ conversation,
// ticket }) opens the follow-up form on its own (for the ticket widget); startReminders() runs once per console
// session (stopReminders() on logout).

import { get, post, del, toast, fail, describeFailure } from "./api.js";
import { h, clear, button, field, clock, pick, idOf } from "./util.js";
import { customerName } from "./state.js";
import { modal, errorBox, busy, beep } from "./ui.js";

const CHANGED = "channelhub:calendar-changed"; // a window event: every widget and the reminders reload
const DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

function startOfDay(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate());
}

function dayKey(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

// the value of an <input type="datetime-local"> for a Date, in the browser's own time zone
function localInput(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// what the hub warned about the last follow-up (its window will be closed then): a notice, not an error
function warningBox() {
  const el = h("p", { class: "notice", role: "status", hidden: true, dataset: { testid: "calendar-warning" } });
  return {
    el,
    show(text) {
      el.textContent = text;
      el.hidden = !text;
    },
  };
}

function announce() {
  window.dispatchEvent(new CustomEvent(CHANGED));
}

export function mountCalendar(container, { conversation } = {}) {
  const headingId = `cal-h-${Math.random().toString(36).slice(2, 8)}`;
  const box = h("section", { class: "widget calendar-widget", "aria-labelledby": headingId });
  container.appendChild(box);
  let shown = new Date(); // the month on screen
  shown.setDate(1);
  let selected = startOfDay(new Date());
  let events = [];
  const notice = warningBox();

  async function load() {
    const from = new Date(shown.getFullYear(), shown.getMonth(), 1);
    const to = new Date(shown.getFullYear(), shown.getMonth() + 1, 1);
    try {
      const answer = await get(`events?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`);
      events = answer.items || [];
    } catch (err) {
      fail(err, "Calendar");
      events = [];
    }
    render();
  }

  function eventsOn(day) {
    const key = dayKey(day);
    return events.filter((e) => dayKey(new Date(e.starts_at)) === key);
  }

  function render() {
    const title = shown.toLocaleDateString([], { month: "long", year: "numeric" });
    const grid = h("div", { class: "month", role: "grid", "aria-label": title });
    grid.appendChild(h("div", { class: "month-row", role: "row" }, DAY_NAMES.map((n) => h("span", { class: "month-dayname", role: "columnheader" }, n))));
    const first = new Date(shown.getFullYear(), shown.getMonth(), 1);
    const offset = (first.getDay() + 6) % 7; // weeks start on Monday
    const days = new Date(shown.getFullYear(), shown.getMonth() + 1, 0).getDate();
    let row = h("div", { class: "month-row", role: "row" });
    for (let i = 0; i < offset; i += 1) row.appendChild(h("span", { class: "month-pad", role: "gridcell" }));
    const today = dayKey(new Date());
    for (let day = 1; day <= days; day += 1) {
      const date = new Date(shown.getFullYear(), shown.getMonth(), day);
      const count = eventsOn(date).length;
      const isSelected = dayKey(date) === dayKey(selected);
      const label = `${date.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" })}${count ? `, ${count} event${count > 1 ? "s" : ""}` : ""}`;
      row.appendChild(
        h("span", { role: "gridcell", "aria-selected": String(isSelected) },
          h("button", {
            type: "button",
            class: ["day", count ? "has-events" : "", isSelected ? "selected" : "", dayKey(date) === today ? "today" : ""].filter(Boolean).join(" "),
            "aria-label": label,
            "aria-current": dayKey(date) === today ? "date" : null,
            dataset: { day: dayKey(date) },
            onclick: () => {
              selected = date;
              render();
            },
          }, String(day)),
        ),
      );
      if ((offset + day) % 7 === 0) {
        grid.appendChild(row);
        row = h("div", { class: "month-row", role: "row" });
      }
    }
    if (row.children.length) grid.appendChild(row);

    const list = h("ul", { class: "day-events", "aria-label": `Events on ${selected.toLocaleDateString()}` });
    for (const e of eventsOn(selected)) list.appendChild(eventItem(e));
    if (!list.children.length) list.appendChild(h("li", { class: "muted" }, "Nothing scheduled."));

    clear(
      box,
      h("div", { class: "widget-title" },
        h("h2", { id: headingId }, "Calendar"),
        button("Feed…", openFeed, { class: "quiet", title: "Your calendar in your own calendar app" }),
      ),
      h("div", { class: "month-nav" },
        button("‹", () => move(-1), { class: "icon-button", "aria-label": "Previous month" }),
        h("strong", { class: "month-title" }, title),
        button("›", () => move(1), { class: "icon-button", "aria-label": "Next month" }),
      ),
      grid,
      h("h3", { class: "day-title" }, selected.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" })),
      list,
      notice.el,
      conversation ? button("Follow-up…", () => openFollowUp(), { class: "primary" }) : null,
    );
  }

  function eventItem(e) {
    const about = [];
    if (e.conversation) about.push(`conversation #${e.conversation}`);
    if (e.ticket) about.push(`ticket #${e.ticket}`);
    return h("li", { class: "day-event", dataset: { event: e.id } },
      h("span", { class: "event-time" }, clock(e.starts_at)),
      h("span", { class: "event-title" }, e.title),
      about.length ? h("small", { class: "muted" }, ` · ${about.join(", ")}`) : null,
      e.note ? h("p", { class: "event-note" }, e.note) : null,
      button("Delete", (ev) =>
        busy(ev.currentTarget, async () => {
          try {
            await del(`events/${e.id}`);
            announce();
          } catch (err) {
            fail(err, "Delete event");
          }
        }), { class: "quiet", "aria-label": `Delete ${e.title}` }),
    );
  }

  function move(months) {
    shown = new Date(shown.getFullYear(), shown.getMonth() + months, 1);
    load();
  }

  async function openFollowUp() {
    const conv = conversation;
    const created = await scheduleFollowUp({
      conversation: conv,
      ticket: pick(conv, "ticket_id") ?? idOf(conv.ticket),
      day: new Date(Math.max(selected.getTime(), startOfDay(new Date()).getTime())),
    });
    if (!created) return;
    selected = startOfDay(new Date(created.starts_at));
    shown = new Date(selected.getFullYear(), selected.getMonth(), 1);
    notice.show(describeWarnings(created.warnings));
    load();
  }

  async function openFeed() {
    const dialog = modal("Your calendar feed", { label: "calendar-feed" });
    const url = h("input", { type: "text", readonly: true, class: "feed-url", "aria-label": "Feed URL" });
    const error = errorBox();
    const show = (answer) => {
      url.value = answer.url;
    };
    clear(
      dialog.body,
      h("p", {}, "Subscribe to this address in your calendar app to see your follow-ups there. Keep it secret: whoever has it can read your events."),
      url,
      error.el,
    );
    const rotate = button("New address", () =>
      busy(rotate, async () => {
        try {
          show(await post("me/calendar-feed/rotate"));
          toast("The old address no longer works.");
        } catch (err) {
          error.show(describeFailure(err));
        }
      }),
    );
    const copy = button("Copy", async () => {
      try {
        await navigator.clipboard.writeText(url.value);
        toast("Copied.");
      } catch {
        url.select();
      }
    });
    clear(dialog.footer, rotate, copy, button("Close", dialog.close, { class: "primary" }));
    try {
      show(await get("me/calendar-feed"));
    } catch (err) {
      error.show(describeFailure(err));
    }
  }

  const reload = () => {
    if (!box.isConnected) {
      window.removeEventListener(CHANGED, reload);
      return;
    }
    load();
  };
  window.addEventListener(CHANGED, reload);
  render();
  load();
  return { el: box, reload: load };
}

function describeWarnings(warnings) {
  return (warnings || [])
    .map((w) => `Note: ${w.message}${w.window_closed_at ? ` (it closes ${new Date(w.window_closed_at).toLocaleString()})` : ""}.`)
    .join(" ");
}

// The follow-up form, for a conversation and/or a ticket (the ticket widget may call it too): resolves with
// the created event (its warnings included), or null when the agent cancels.
export function scheduleFollowUp({ conversation = null, ticket = null, day = new Date() } = {}) {
  return new Promise((resolve) => {
    let created = null;
    const when = new Date(day);
    when.setHours(10, 0, 0, 0);
    if (when < new Date()) when.setDate(when.getDate() + 1);
    const who = conversation ? customerName(conversation) : `ticket #${ticket}`;
    const title = h("input", { type: "text", value: `Write to ${who}`, maxlength: "300", required: true });
    const starts = h("input", { type: "datetime-local", value: localInput(when), required: true });
    const minutes = h("input", { type: "number", min: "0", max: "1440", value: "15", inputmode: "numeric" });
    const note = h("textarea", { rows: "3", maxlength: "5000" });
    const withTicket = conversation && ticket ? h("input", { type: "checkbox", checked: true }) : null;
    const error = errorBox();
    const dialog = modal("Schedule a follow-up", { label: "follow-up", onClose: () => resolve(created) });
    const save = button("Schedule", submit, { class: "primary" });
    clear(
      dialog.body,
      field("Title", title),
      field("When", starts, "Your own time zone"),
      field("Minutes", minutes, "0: no end time"),
      field("Note", note),
      h("p", { class: "muted" }, conversation ? `About conversation #${conversation.id}` : `About ticket #${ticket}`),
      withTicket ? h("label", { class: "check" }, withTicket, ` and its ticket #${ticket}`) : null,
      error.el,
    );
    clear(dialog.footer, button("Cancel", dialog.close), save);
    title.focus();

    async function submit() {
      const start = starts.value ? new Date(starts.value) : null;
      if (!title.value.trim() || !start || Number.isNaN(start.getTime())) {
        error.show("Give the follow-up a title and a time.");
        return;
      }
      const body = { title: title.value.trim(), starts_at: start.toISOString() };
      if (conversation) body.conversation = conversation.id;
      if (ticket && (!conversation || withTicket?.checked)) body.ticket = ticket;
      const length = Number(minutes.value || 0);
      if (length > 0) body.ends_at = new Date(start.getTime() + length * 60000).toISOString();
      if (note.value.trim()) body.note = note.value.trim();
      await busy(save, async () => {
        try {
          created = await post("events", body);
        } catch (err) {
          error.show(describeFailure(err));
          return;
        }
        toast(`Follow-up scheduled for ${new Date(created.starts_at).toLocaleString()}.`);
        dialog.close(); // resolves the promise
        announce();
      });
    }
  });
}

// ------------------------------------------------------------------ reminders

// The console reminds the agent of an event when it starts, with timers set from the agent's own list
// (the next day's events, read again every few minutes and whenever the calendar changes here). The hub
// keeps no timers of its own: a console that is closed gets no reminder, and the iCalendar feed's alarm
// (VALARM) covers that case in the agent's calendar app. See docs/calendar-and-rooms.md.
const LOOK_AHEAD_MS = 24 * 3600 * 1000;
const REFRESH_MS = 5 * 60 * 1000;
const reminded = new Set(); // event id + start: one reminder per start time, even when the list reloads
let timers = [];
let refreshTimer = null;
let running = false;

export function startReminders({ sound = () => false } = {}) {
  stopReminders();
  running = true;
  const refresh = async () => {
    if (!running) return;
    let upcoming = [];
    const now = Date.now();
    try {
      const from = new Date(now - 60 * 1000).toISOString();
      const to = new Date(now + LOOK_AHEAD_MS).toISOString();
      upcoming = (await get(`events?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`)).items || [];
    } catch {
      return; // logged out, or the hub is away: the next refresh tries again
    }
    for (const t of timers) clearTimeout(t);
    timers = [];
    for (const e of upcoming) {
      const key = `${e.id}@${e.starts_at}`;
      if (reminded.has(key)) continue;
      const wait = Math.max(0, new Date(e.starts_at).getTime() - Date.now());
      timers.push(setTimeout(() => remind(e, key, sound()), wait));
    }
  };
  window.addEventListener(CHANGED, refresh);
  refreshTimer = setInterval(refresh, REFRESH_MS);
  stopReminders.refresh = refresh;
  refresh();
}

export function stopReminders() {
  running = false;
  for (const t of timers) clearTimeout(t);
  timers = [];
  clearInterval(refreshTimer);
  if (stopReminders.refresh) window.removeEventListener(CHANGED, stopReminders.refresh);
  stopReminders.refresh = null;
  document.getElementById("reminders")?.remove();
}

function remind(e, key, withSound) {
  if (!running || reminded.has(key)) return;
  reminded.add(key);
  let area = document.getElementById("reminders");
  if (!area) {
    area = h("section", { id: "reminders", class: "reminders", "aria-label": "Reminders", role: "alert" });
    document.body.appendChild(area);
  }
  const about = e.conversation ? ` · conversation #${e.conversation}` : e.ticket ? ` · ticket #${e.ticket}` : "";
  const card = h("div", { class: "reminder", dataset: { event: e.id } },
    h("strong", {}, `${clock(e.starts_at)} ${e.title}`),
    h("small", { class: "muted" }, about),
    e.note ? h("p", {}, e.note) : null,
    button("Dismiss", () => card.remove()),
  );
  area.appendChild(card);
  if (withSound) beep();
}
