// The REST client: one place for the session cookie, the CSRF header, idempotency
// keys and the error shape {"error": {"code", "message", ...}}.

import { h } from "./util.js";

const BASE = "/api/v1";
let csrfToken = null;
let onUnauthenticated = () => {};

export class ApiFailure extends Error {
  constructor(status, error) {
    super(error?.message || `request failed (${status})`);
    this.status = status;
    this.code = error?.code || "http_error";
    this.details = error || {};
  }
}

// Logging out: new requests (debounced searches, late timers) fail here, quietly, and the
// ones already on their way finish before the session ends, so none of them races the logout.
let ended = false;
let inflight = 0;
export async function endSession() {
  ended = true;
  for (let i = 0; i < 150 && inflight > 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
}
export function beginSession() {
  ended = false;
}

export function setCsrf(token) {
  csrfToken = token || null;
}

export function whenUnauthenticated(fn) {
  onUnauthenticated = fn;
}

function csrfFromCookie() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (/csrf/i.test(name)) return decodeURIComponent(rest.join("="));
  }
  return null;
}

// the CSRF token an unsafe request on the session carries (for requests not made through api(): uploads)
export function currentCsrf() {
  return csrfToken || csrfFromCookie();
}

export async function api(method, path, body, { idempotencyKey, quiet401 = false, raw = false } = {}) {
  if (ended && path !== "auth/login" && path !== "auth/logout") throw new ApiFailure(401, { code: "logged_out", message: "You are logged out." });
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    if (body instanceof FormData) init.body = body;
    else {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  if (method !== "GET" && method !== "HEAD") {
    const token = csrfToken || csrfFromCookie();
    if (token) headers["X-CSRF-Token"] = token;
    // a retried click (or a retry after a lost answer) must not act twice
    headers["Idempotency-Key"] = idempotencyKey || crypto.randomUUID();
  }
  let response;
  let text;
  inflight += 1;
  try {
    response = await fetch(path.startsWith("/") ? path : `${BASE}/${path}`, init);
    if (raw) return response;
    text = await response.text();
  } catch (err) {
    throw new ApiFailure(0, { code: "network", message: "The hub cannot be reached. Check the connection and try again." });
  } finally {
    inflight -= 1;
  }
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: { code: "not_json", message: text.slice(0, 200) } };
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !quiet401) onUnauthenticated();
    throw new ApiFailure(response.status, data?.error || { message: response.statusText });
  }
  return data;
}

export const get = (path, opts) => api("GET", path, undefined, opts);
export const post = (path, body, opts) => api("POST", path, body ?? {}, opts);
export const put = (path, body, opts) => api("PUT", path, body ?? {}, opts);
export const del = (path, opts) => api("DELETE", path, undefined, opts);

// ---------------------------------------------------------------- feedback

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast toast-${kind}` }, message);
  box.appendChild(el);
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 3000);
}

// The refusal as the server worded it, plus what is still allowed (outbound rules).
export function describeFailure(err) {
  if (!(err instanceof ApiFailure)) return String(err?.message || err);
  let text = err.message;
  const alts = err.details?.alternatives;
  if (alts && typeof alts === "object") {
    const names = alternativeNames(alts);
    if (names.length) text += ` Allowed instead: ${names.join(", ")}.`;
  }
  return text;
}

export function alternativeNames(alts) {
  const out = [];
  const list = Array.isArray(alts) ? alts : Object.entries(alts).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => ({ kind: k, ...(typeof x === "object" ? x : { name: x }) })) : []));
  for (const alt of list) {
    if (typeof alt === "string") out.push(alt);
    else if (alt && typeof alt === "object") {
      const name = alt.name || alt.template || alt.tag || alt.kind;
      if (!name) continue;
      const kind = alt.kind || alt.type;
      out.push(kind && kind !== name ? `${kindLabel(kind)} ${name}` : name);
    }
  }
  return out;
}

function kindLabel(kind) {
  if (/template/.test(kind)) return "template";
  if (/tag/.test(kind)) return "tag";
  return kind;
}

export function fail(err, where) {
  const text = describeFailure(err);
  toast(where ? `${where}: ${text}` : text, "error");
  return text;
}

// A route that does not exist yet (or any more) answers 404/405 without an error code of its own.
export function isMissingRoute(err) {
  return err instanceof ApiFailure && (err.status === 405 || (err.status === 404 && ["not_found", "http_error"].includes(err.code) && /not found/i.test(err.message)));
}
