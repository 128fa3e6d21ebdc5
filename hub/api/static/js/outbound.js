// "Send a new message": pick a channel and a customer who wrote before, see
// what is allowed now, write or pick a template, then start a chat or send and
// close with a status. A refusal shows the hub's reason and the alternatives,
// each one a button that switches the form to it.

import { get, post, toast, describeFailure, alternativeNames, isMissingRoute } from "./api.js";
import { navigate } from "./nav.js";
import { h, clear, field, select, dateTime, items, debounce, channelLabel, pick } from "./util.js";
import { state, upsertConversation, isAdmin, statusesFor } from "./state.js";
import { modal, errorBox, busy } from "./ui.js";
import { CHANNEL_RESTRICTIONS, ruleText, describeWindow } from "./restrictions.js";

// `identities`: the customer's identities that wrote to us (from a CRM contact or a ticket), the first one
// preselected; the agent may pick another of them or search as from the top bar.
export function openOutbound({ channel = "whatsapp", identity = null, identities = null, contact = null } = {}) {
  const dlg = modal("Send a new message", { wide: true, label: "outbound" });
  const channels = [...new Set([...(state.accounts.map((a) => a.channel).filter(Boolean)), "whatsapp", "messenger", "viber"])];
  const channelSelect = select(channels.map((c) => [c, channelLabel[c] || c]), channel, { "data-testid": "outbound-channel" });
  const search = h("input", { type: "search", placeholder: "Phone number or name", autocomplete: "off", "data-testid": "outbound-search" });
  const results = h("ul", { class: "list compact", role: "listbox", "aria-label": "Customers who wrote before" });
  const chosenBox = h("div", { class: "chosen", "aria-live": "polite" });
  const allowedBox = h("div", { class: "allowed", role: "status", "data-testid": "outbound-allowed" });
  const modeText = h("input", { type: "radio", name: "ob-kind", value: "text", checked: true });
  const modeTemplate = h("input", { type: "radio", name: "ob-kind", value: "template" });
  const text = h("textarea", { rows: 4, placeholder: "Message (optional when you start a chat)", "aria-label": "Message" });
  const templateSelect = h("select", { "aria-label": "Template to send" }, h("option", { value: "" }, "Choose a template…"));
  const varsBox = h("div", { class: "template-vars" });
  const rendered = h("pre", { class: "rendered", "data-testid": "outbound-rendered", hidden: true });
  const tagSelect = h("select", { "aria-label": "Message tag", hidden: true }, h("option", { value: "" }, "No tag"));
  const statusSelect = select([["", "Status (needed to send and close)…"], ...state.statuses.map((s) => [s.id, s.name || s.id])], "", { "aria-label": "Status" });
  const error = errorBox();
  const alternatives = h("div", { class: "alternatives", "data-testid": "outbound-alternatives" });
  const pickList = h("div", { class: "choice-list", role: "radiogroup", "aria-label": "The contact's identities that wrote to us", "data-testid": "outbound-identities" });
  const restrictions = h("details", { class: "restrictions", "data-testid": "outbound-restrictions" });
  const startChat = h("button", { type: "button" }, "Start chat");
  const sendClose = h("button", { type: "button", class: "primary" }, "Send and close");

  dlg.body.append(
    h("div", { class: "grid-2" },
      h("div", {},
        field("Channel", channelSelect),
        field("Customer", search, "Only customers who wrote to us before can be found."),
        pickList,
        results,
        chosenBox,
      ),
      h("div", {},
        allowedBox,
        restrictions,
        h("fieldset", { class: "kind" }, h("legend", {}, "What to send"), h("label", {}, modeText, " Text"), h("label", {}, modeTemplate, " Template")),
        text,
        templateSelect,
        tagSelect,
        varsBox,
        rendered,
        field("Status", statusSelect),
      ),
    ),
    error.el,
    alternatives,
  );
  dlg.footer.append(startChat, sendClose);

  let identity_ = identity;
  let templates = [];
  let eligibility = null;
  const inputs = {};

  const kind = () => (modeTemplate.checked ? "template" : "text");
  const syncKind = () => {
    text.hidden = kind() !== "text";
    templateSelect.hidden = kind() !== "template";
    varsBox.hidden = kind() !== "template";
    rendered.hidden = kind() !== "template" || !templateSelect.value;
  };
  modeText.addEventListener("change", syncKind);
  modeTemplate.addEventListener("change", syncKind);
  syncKind();

  const find = debounce(async () => {
    const q = search.value.trim();
    clear(results);
    if (!q) return;
    try {
      const params = new URLSearchParams({ q, channel: channelSelect.value, contacted: "1" });
      const found = items(await get(`identities?${params}`));
      if (!found.length) results.appendChild(h("li", { class: "muted" }, "Nobody who wrote before matches. We never write first."));
      for (const ident of found.slice(0, 12)) {
        const label = `${ident.contact?.name || ident.display_name || ident.external_id} · ${ident.external_id}${ident.contact?.company ? ` · ${ident.contact.company}` : ""}`;
        results.appendChild(h("li", {}, h("button", { type: "button", class: "link", role: "option", onclick: () => choose(ident) }, label), ident.last_inbound_at ? h("small", { class: "muted" }, ` last wrote ${dateTime(ident.last_inbound_at)}`) : null));
      }
    } catch (err) {
      results.appendChild(h("li", { class: "error-text" }, isMissingRoute(err) ? "Customer search is not available on this hub yet." : describeFailure(err)));
    }
  }, 250);
  search.addEventListener("input", find);
  function showRestrictions() {
    const lines = CHANNEL_RESTRICTIONS[channelSelect.value] || [];
    clear(restrictions, h("summary", {}, `Restrictions on ${channelLabel[channelSelect.value] || channelSelect.value}`), h("ul", {}, lines.map((l) => h("li", {}, l))));
  }
  showRestrictions();

  channelSelect.addEventListener("change", () => {
    showRestrictions();
    identity_ = null;
    clear(chosenBox);
    clear(allowedBox);
    find();
    loadTemplates();
  });

  async function choose(ident) {
    identity_ = ident;
    clear(results);
    clear(chosenBox, h("p", {}, "To: ", h("strong", {}, ident.contact?.name || ident.display_name || ident.external_id), ` (${channelLabel[ident.channel] || ident.channel} ${ident.external_id})`));
    await refreshEligibility();
  }

  // the manual: "Select a status" before sending; only those the conversation's queue allows at close
  function syncStatuses(queueId) {
    const kept = statusSelect.value;
    const allowed = queueId ? statusesFor({ queue: queueId }) : state.statuses;
    clear(statusSelect, h("option", { value: "" }, "Status (needed to send and close)…"), ...allowed.map((s) => h("option", { value: s.id }, s.name || s.id)));
    statusSelect.value = allowed.some((s) => s.id === kept) ? kept : "";
  }

  async function refreshEligibility() {
    if (!identity_) return;
    clear(allowedBox, h("p", { class: "muted" }, "Checking what is allowed now…"));
    try {
      eligibility = await get(`identities/${identity_.id}/eligibility`);
      syncStatuses(eligibility.queue);
      const w = describeWindow(eligibility);
      const closed = pick(eligibility, "window_closed_at", "closed_at");
      const rule = eligibility.rule || "";
      clear(
        allowedBox,
        h("p", { class: `window-state`, dataset: { mode: w.mode, rule } }, w.text),
        rule ? h("p", { class: "rule-text", "data-testid": "outbound-rule", dataset: { rule } }, ruleText(rule, identity_.channel || channelSelect.value)) : null,
        closed && w.mode !== "free" ? h("p", { class: "muted" }, `The window closed ${dateTime(closed)}.`) : null,
      );
      clear(tagSelect, h("option", { value: "" }, "No tag"));
      for (const t of eligibility.tags || []) {
        const name = typeof t === "string" ? t : t.tag || t.name;
        tagSelect.appendChild(h("option", { value: name }, `${name}${t.until ? ` (until ${dateTime(t.until)})` : ""}`));
      }
      tagSelect.hidden = !(eligibility.tags || []).length;
      if (w.mode === "templates") {
        modeTemplate.checked = true;
        syncKind();
      }
    } catch (err) {
      clear(allowedBox, h("p", { class: "error-text" }, describeFailure(err)));
    }
  }

  async function loadTemplates() {
    clear(templateSelect, h("option", { value: "" }, "Choose a template…"));
    try {
      templates = items(await get(`templates?channel=${encodeURIComponent(channelSelect.value)}`));
    } catch {
      templates = [];
    }
    for (const t of templates) templateSelect.appendChild(h("option", { value: t.name }, t.name));
  }

  templateSelect.addEventListener("change", () => pickTemplate(templateSelect.value));

  function pickTemplate(name) {
    clear(varsBox);
    for (const key of Object.keys(inputs)) delete inputs[key];
    rendered.hidden = !name;
    if (!name) return;
    const tpl = templates.find((t) => t.name === name) || { variables: {} };
    for (const [key, example] of Object.entries(tpl.variables || {})) {
      inputs[key] = h("input", { placeholder: String(example ?? ""), "data-variable": key });
      inputs[key].addEventListener("input", debounce(preview, 300));
      varsBox.appendChild(field(key, inputs[key]));
    }
    preview();
  }

  const variables = () => Object.fromEntries(Object.entries(inputs).filter(([, el]) => el.value !== "").map(([k, el]) => [k, el.value]));

  async function preview() {
    const name = templateSelect.value;
    if (!name) return;
    const tpl = templates.find((t) => t.name === name) || {};
    rendered.classList.remove("error-text");
    if (!isAdmin()) {
      // agents see the wording; the hub fills in the customer's details when it sends
      rendered.textContent = tpl.body || "";
      return;
    }
    try {
      const answer = await post(`templates/${encodeURIComponent(name)}/preview`, { variables: variables(), channel: channelSelect.value });
      rendered.textContent = answer.text ?? "";
    } catch (err) {
      rendered.textContent = tpl.body ? `${tpl.body}\n\n(${describeFailure(err)})` : describeFailure(err);
    }
  }

  function body(mode) {
    const b = { identity: identity_?.id, mode };
    if (kind() === "template" && templateSelect.value) {
      b.template = templateSelect.value;
      b.variables = variables();
    } else if (text.value.trim()) b.text = text.value.trim();
    if (!tagSelect.hidden && tagSelect.value) b.tag = tagSelect.value;
    if (mode === "close" && statusSelect.value) b.status = statusSelect.value;
    return b;
  }

  async function submit(mode, control) {
    error.clear();
    clear(alternatives);
    if (!identity_) {
      error.show("Find the customer first: only customers who wrote before can be messaged.");
      search.focus();
      return;
    }
    await busy([startChat, sendClose], async () => {
      try {
        const answer = await post("outbound", body(mode));
        const conv = answer?.conversation || answer;
        dlg.close();
        if (mode === "chat" && conv?.id !== undefined) {
          upsertConversation({ ...conv, state: conv.state || "active" });
          if (!state.openTabs.includes(String(conv.id))) state.openTabs.push(String(conv.id));
          navigate(`conv:${conv.id}`);
        } else {
          toast("Message sent and the conversation closed.");
        }
      } catch (err) {
        // the hub's refusal in the words of its code, then its own sentence and what is allowed instead
        const rule = err.details?.rule || err.code;
        const known = rule && ruleText(rule, identity_.channel || channelSelect.value);
        error.show(known && known !== err.message ? `${known} (${err.message})` : describeFailure(err));
        error.el.dataset.rule = rule || "";
        offerAlternatives(err.details?.alternatives, err.details?.window_closed_at);
      }
    });
  }

  function offerAlternatives(alts, closedAt) {
    clear(alternatives);
    if (!alts) return;
    const names = alternativeNames(alts);
    const list = Array.isArray(alts) ? alts : Object.entries(alts).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => ({ kind: k, ...(typeof x === "object" ? x : { name: x }) })) : []));
    if (!names.length) {
      alternatives.appendChild(h("p", { class: "muted" }, "Nothing else may be sent to this customer now."));
      return;
    }
    alternatives.appendChild(h("p", {}, `Allowed instead${closedAt ? ` (the window closed ${dateTime(closedAt)})` : ""}:`));
    const row = h("div", { class: "row" });
    for (const alt of list) {
      const isTag = /tag/.test(alt.kind || alt.type || "") || (alt.tag && !alt.template);
      const name = typeof alt === "string" ? alt : alt.template || alt.name || alt.tag;
      if (!name) continue;
      row.appendChild(h("button", { type: "button", class: "alt", onclick: () => useAlternative(isTag ? "tag" : "template", name) }, isTag ? `Use tag ${name}` : `Use template ${name}`));
    }
    alternatives.appendChild(row);
  }

  async function useAlternative(kindOf, name) {
    if (kindOf === "tag") {
      if (![...tagSelect.options].some((o) => o.value === name)) tagSelect.appendChild(h("option", { value: name }, name));
      tagSelect.hidden = false;
      tagSelect.value = name;
    } else {
      if (!templates.length) await loadTemplates();
      if (![...templateSelect.options].some((o) => o.value === name)) templateSelect.appendChild(h("option", { value: name }, name));
      modeTemplate.checked = true;
      syncKind();
      templateSelect.value = name;
      pickTemplate(name);
      templateSelect.focus();
    }
    clear(alternatives);
    error.clear();
  }

  startChat.addEventListener("click", () => submit("chat", startChat));
  sendClose.addEventListener("click", () => submit("close", sendClose));
  loadTemplates();
  // from a contact or a ticket: their identities that wrote to us, the first preselected
  const offered = (identities || []).filter((i) => i && i.id !== undefined);
  if (offered.length) {
    const name = `ob-ident-${Math.random().toString(36).slice(2, 7)}`;
    pickList.append(h("p", { class: "muted" }, contact?.name ? `${contact.name} wrote to us as:` : "Wrote to us as:"));
    offered.forEach((ident, i) => {
      const radio = h("input", { type: "radio", name, value: String(ident.id), checked: i === 0 });
      radio.addEventListener("change", () => {
        if (ident.channel && ident.channel !== channelSelect.value) {
          channelSelect.value = ident.channel;
          showRestrictions();
          loadTemplates();
        }
        choose(ident);
      });
      const label = `${channelLabel[ident.channel] || ident.channel} ${ident.external_id || ""}${ident.display_name ? ` · ${ident.display_name}` : ""}`;
      pickList.append(h("label", { class: "choice", dataset: { identity: String(ident.id) } }, radio, ` ${label}`, ident.last_inbound_at ? h("small", { class: "muted" }, ` last wrote ${dateTime(ident.last_inbound_at)}`) : null));
    });
    if (offered[0].channel && offered[0].channel !== channelSelect.value) {
      channelSelect.value = offered[0].channel;
      loadTemplates();
    }
    showRestrictions();
    choose(offered[0]);
  } else if (identities) {
    pickList.append(h("p", { class: "muted", "data-testid": "outbound-none-wrote" }, "None of this contact's identities wrote to us: we never write first. Search for the customer instead."));
  }
  if (identity) choose(identity);
  search.focus();
}
