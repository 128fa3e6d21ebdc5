// What the page knows, and small readers that accept the API's shapes.

import { get } from "./api.js";
import { idOf, items, pick, channelLabel } from "./util.js";

export const state = {
  me: null,
  queues: [],
  statuses: [],
  agents: [],
  accounts: [],
  conversations: new Map(), // id -> conversation (offered to me, owned by me, shared with me)
  waiting: [],
  openTabs: [], // conversation ids, in the order they were opened
  view: "desk",
  previousView: "desk",
  sound: localStorage.getItem("channelhub.sound") === "on",
  missing: new Set(), // API routes this hub does not have (yet)
};

const subscribers = new Set();
export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}
export function changed(what) {
  for (const fn of subscribers) fn(what);
}

export function role() {
  return state.me?.role || "agent";
}
export const isSupervisor = () => ["supervisor", "admin"].includes(role());
export const isAdmin = () => role() === "admin";

export function myId() {
  return pick(state.me, "id", "agent_id");
}

export function presenceOf(agent) {
  const p = agent?.presence;
  if (p && typeof p === "object") return { state: p.state || p.presence, reason: p.reason, paid: p.paid, since: p.since };
  return { state: p || "offline", reason: pick(agent, "pause_reason", "reason"), paid: pick(agent, "pause_paid", "paid"), since: agent?.presence_since };
}

export function queueOf(conv) {
  const q = conv?.queue;
  if (q && typeof q === "object") return { ...findQueue(q.id), ...q };
  const id = q ?? conv?.queue_id;
  const known = findQueue(id) || {};
  return { id, ...known, name: conv?.queue_name || known.name || id || "", number: conv?.queue_number ?? known.number };
}

export function findQueue(id) {
  return state.queues.find((q) => String(q.id) === String(id));
}

export function customerName(conv) {
  const identity = conv?.identity || {};
  const contact = conv?.contact || identity.contact;
  return (contact && contact.name) || identity.display_name || identity.name || identity.external_id || `Conversation ${conv?.id ?? ""}`;
}

export function companyOf(conv) {
  const contact = conv?.contact || conv?.identity?.contact;
  return contact?.company || "";
}

export function identityId(conv) {
  return idOf(conv?.identity) ?? conv?.identity_id;
}

export function channelName(conv) {
  return channelLabel[conv?.channel] || conv?.channel || "";
}

export function ownerId(conv) {
  return idOf(pick(conv, "owner", "owner_agent", "owner_agent_id", "owner_id"));
}

export function offeredTo(conv) {
  const offer = conv?.offer;
  return idOf(pick(offer || {}, "agent", "agent_id")) ?? idOf(pick(conv, "offered_to", "offered_agent", "offered_agent_id"));
}

export function offerTimes(conv) {
  const offer = conv?.offer || {};
  return {
    offeredAt: pick(offer, "offered_at", "at") || conv?.offered_at,
    deadline: pick(offer, "deadline", "offer_deadline") || conv?.offer_deadline,
  };
}

export function statusesFor(conv) {
  const queue = queueOf(conv);
  const allowed = queue?.statuses;
  if (!allowed || !allowed.length) return state.statuses;
  return allowed.map((s) => (typeof s === "object" ? s : state.statuses.find((x) => x.id === s) || { id: s, name: s }));
}

export function agentName(agentOrId) {
  if (agentOrId && typeof agentOrId === "object") return agentOrId.display_name || agentOrId.name || agentOrId.login;
  if (agentOrId !== undefined && agentOrId !== null && String(agentOrId) === String(myId())) return state.me.display_name || state.me.login;
  const a = state.agents.find((x) => String(x.id) === String(agentOrId) || x.login === agentOrId);
  return a ? a.display_name || a.login : agentOrId ? `agent #${agentOrId}` : "";
}

// The routes this hub serves, from its OpenAPI document: the console asks only
// for what exists and says clearly what this hub does not offer (yet).
let routes = null; // null = unknown (no document): try everything

export async function loadRoutes() {
  try {
    const doc = await get("/api/v1/openapi.json", { quiet401: true });
    routes = [];
    const server = (doc.servers || [])[0]?.url || "";
    const prefix = server.startsWith("/") ? server.replace(/\/$/, "") : (() => { try { return new URL(server).pathname.replace(/\/$/, ""); } catch { return ""; } })();
    for (let [path, ops] of Object.entries(doc.paths || {})) {
      if (!path.startsWith("/api/")) path = `${prefix}${path}`;
      const pattern = new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\\?\{[^}]+\\?\}/g, "[^/]+")}$`);
      for (const method of Object.keys(ops)) routes.push([method.toUpperCase(), pattern]);
    }
  } catch {
    routes = null;
  }
}

export function hasRoute(method, path) {
  if (routes === null) return true;
  const full = (path.startsWith("/") ? path : `/api/v1/${path}`).split("?")[0];
  return routes.some(([m, pattern]) => m === method.toUpperCase() && pattern.test(full));
}

export async function tryGet(path, fallback) {
  if (!hasRoute("GET", path)) {
    state.missing.add(path.split("?")[0]);
    return fallback;
  }
  try {
    return await get(path, { quiet401: true });
  } catch (err) {
    if (err.status === 404 || err.status === 405 || err.status === 403) {
      state.missing.add(path.split("?")[0]);
      return fallback;
    }
    throw err;
  }
}

export async function loadCatalogue() {
  await loadRoutes();
  // the agent and account lists are for supervisors and admins; agents name a colleague by login
  const [queues, statuses, agents, accounts] = await Promise.all([
    tryGet("queues", []),
    tryGet("statuses", []),
    isSupervisor() ? tryGet("agents", []) : [],
    isSupervisor() ? tryGet("accounts", []) : [],
  ]);
  state.queues = items(queues);
  state.statuses = items(statuses);
  state.agents = items(agents);
  state.accounts = items(accounts);
}

export function upsertConversation(conv) {
  if (!conv || conv.id === undefined) return null;
  const key = String(conv.id);
  const merged = { ...(state.conversations.get(key) || {}), ...conv };
  state.conversations.set(key, merged);
  return merged;
}

export function dropConversation(id) {
  const key = String(id);
  state.conversations.delete(key);
  state.openTabs = state.openTabs.filter((x) => x !== key);
}

export function queueUrl(conv) {
  const direct = conv?.url || conv?.queue_url || conv?.open_url;
  if (direct) return direct;
  const template = queueOf(conv)?.url_template;
  if (!template) return null;
  const identity = conv.identity || {};
  const values = { conversation: conv.id, conversation_id: conv.id, id: conv.id, identity: identity.id, external_id: identity.external_id, channel: conv.channel, account: conv.account, queue: queueOf(conv).id };
  return template.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(values[key] ?? ""));
}
