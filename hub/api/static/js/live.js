// The WebSocket: one connection per page, reconnecting with back-off and
// catching up with ?since=<last sequence number>, so a flaky link loses nothing.

const listeners = new Set();
const statusListeners = new Set();
let socket = null;
let lastSeq = null;
// Sequence numbers already handled. Several hub processes (or two writers in one) may commit numbers out of
// order, so "at or below the highest seen" would drop an event that was merely late; a set does not.
const seen = new Set();
let attempt = 0;
let stopped = true;
let timer = null;

export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function onStatus(fn) {
  statusListeners.add(fn);
  return () => statusListeners.delete(fn);
}

function setStatus(state) {
  for (const fn of statusListeners) fn(state);
}

export function lastSequence() {
  return lastSeq;
}

export function start() {
  stopped = false;
  connect();
}

export function stop() {
  stopped = true;
  clearTimeout(timer);
  if (socket) socket.close(1000, "logout");
  socket = null;
  lastSeq = null;
  seen.clear();
}

// Tests use these to lose the link as a bad network would, and to get it back.
let suspended = false;
export function suspend() {
  suspended = true;
  clearTimeout(timer);
  if (socket) socket.close(4000, "suspended");
}
export function resume() {
  suspended = false;
  attempt = 0;
  clearTimeout(timer);
  if (!socket) connect();
}

function connect() {
  if (stopped || suspended) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = lastSeq !== null ? `?since=${encodeURIComponent(lastSeq)}` : "";
  setStatus(lastSeq === null ? "connecting" : "reconnecting");
  let ws;
  try {
    ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws${query}`);
  } catch {
    schedule();
    return;
  }
  socket = ws;
  ws.addEventListener("open", () => {
    attempt = 0;
    setStatus("live");
  });
  ws.addEventListener("message", (msg) => {
    let event;
    try {
      event = JSON.parse(msg.data);
    } catch {
      return;
    }
    for (const one of Array.isArray(event) ? event : [event]) dispatch(one);
  });
  ws.addEventListener("close", () => {
    if (socket === ws) socket = null;
    if (!stopped) {
      setStatus("offline");
      schedule();
    }
  });
  ws.addEventListener("error", () => {
    // "close" follows and schedules the reconnect
  });
}

function schedule() {
  attempt += 1;
  const delay = Math.min(15000, 500 * 2 ** Math.min(attempt, 5)) * (0.75 + Math.random() * 0.5);
  clearTimeout(timer);
  timer = setTimeout(connect, delay);
}

function dispatch(event) {
  if (!event || typeof event !== "object") return;
  const seq = event.seq ?? event.sequence;
  if (typeof seq === "number") {
    if (seen.has(seq)) return; // already seen (catch-up overlap)
    seen.add(seq);
    if (seen.size > 5000) seen.delete(seen.values().next().value);
    if (lastSeq === null || seq > lastSeq) lastSeq = seq;
  }
  const kind = event.kind || event.type || event.event || "";
  if (kind === "hello") {
    // where the stream starts: a reconnect asks for everything after it
    const start = event.data?.last_seq ?? event.last_seq;
    if (typeof start === "number" && (lastSeq === null || start > lastSeq)) lastSeq = start;
  }
  for (const fn of listeners) {
    try {
      fn(kind, event.data ?? event.payload ?? event, event);
    } catch (err) {
      console.warn("live event handler failed", kind, err);
    }
  }
}
