// Small DOM and formatting helpers. Every text goes through textContent: nothing a
// customer or an admin typed is ever parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked" || key === "disabled" || key === "selected" || key === "hidden") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function button(label, onclick, attrs = {}) {
  return h("button", { type: "button", ...attrs, onclick }, label);
}

export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("small", { class: "hint" }, hint) : null);
}

export function select(options, value, attrs = {}) {
  const el = h("select", attrs);
  for (const option of options) {
    const [val, text] = Array.isArray(option) ? option : [option, option];
    el.appendChild(h("option", { value: val, selected: String(val) === String(value ?? "") }, text));
  }
  return el;
}

export function parseTime(value) {
  if (!value) return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function clock(value) {
  const d = parseTime(value);
  if (!d) return "";
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function dateTime(value) {
  const d = parseTime(value);
  if (!d) return "";
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? clock(d) : `${d.toLocaleDateString()} ${clock(d)}`;
}

export function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, "0")}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h ${String(minutes % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

export function since(value, now = Date.now()) {
  const d = parseTime(value);
  return d ? duration((now - d.getTime()) / 1000) : "";
}

export function debounce(fn, ms = 250) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// names the API might use for the same thing; the console reads whichever is present
// Run fn soon after the first call, then at most once every `ms`: a steady stream of calls (a busy queue's
// updates) still gets a run every `ms`, where a debounce would wait for a quiet moment that never comes.
export function throttle(fn, ms = 1000, soon = 150) {
  let timer = null;
  let last = 0;
  const run = (...args) => {
    if (timer !== null) return;
    const wait = Math.max(soon, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn(...args);
    }, wait);
  };
  run.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return run;
}

export function pick(obj, ...keys) {
  if (!obj) return undefined;
  for (const key of keys) {
    if (obj[key] !== undefined && obj[key] !== null) return obj[key];
  }
  return undefined;
}

export function idOf(value) {
  if (value === null || value === undefined) return value;
  return typeof value === "object" ? pick(value, "id", "login", "name") : value;
}

export function items(response) {
  if (Array.isArray(response)) return response;
  if (!response) return [];
  return pick(response, "items", "results", "data") || [];
}

// A URL that may become a link or an image source: http(s) only (relative URLs resolve against the hub's
// own page). Anything else — javascript:, data:, a malformed URL — gets null and is shown as plain text.
export function safeHref(url) {
  if (typeof url !== "string" || !url.trim()) return null;
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

// The last path segment of a URL, %-decoded where it can be: one malformed escape ("%E0%A4%A") must not
// throw out of a render and blank a whole history.
export function fileNameOf(url) {
  const last = String(url ?? "").split(/[?#]/)[0].split("/").pop() || "";
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

export const channelLabel = { whatsapp: "WhatsApp", messenger: "Messenger", viber: "Viber" };
