// The template editor (admin): list, edit with immediate validation and a preview
// per channel, provider-approved bindings, version history with diff and restore.

import { get, post, put, del, toast, describeFailure, isMissingRoute } from "./api.js";
import { h, clear, button, field, select, dateTime, items, debounce, channelLabel } from "./util.js";
import { agentName } from "./state.js";
import { errorBox, busy } from "./ui.js";

const CHANNELS = ["whatsapp", "messenger", "viber"];
const LIMITS = { whatsapp: 4096, messenger: 2000, viber: 7000 };
const CONTEXT = ["contact", "identity", "agent", "conversation", "queue"];
const JINJA_WORDS = new Set(["if", "else", "elif", "endif", "for", "endfor", "in", "not", "and", "or", "is", "true", "false", "none", "True", "False", "None", "loop", "range", "set", "endset", "default", "upper", "lower", "title", "trim", "phone", "date", "datetime", "time", "length", "replace", "join", "first", "last", "capitalize", "d"]);

export async function renderTemplates(main) {
  const listBox = h("nav", { class: "template-list", "aria-label": "Templates" });
  const editorBox = h("section", { class: "template-editor", "aria-label": "Template editor" });
  clear(main, h("div", { class: "templates-screen" }, listBox, editorBox));
  let templates = [];

  async function loadList(selectName) {
    try {
      templates = items(await get("templates"));
    } catch (err) {
      clear(listBox, h("p", { class: "notice" }, isMissingRoute(err) ? "This hub does not serve the templates API yet." : describeFailure(err)));
      return;
    }
    clear(
      listBox,
      h("h1", {}, "Templates"),
      button("New template", () => edit(null), { class: "primary" }),
      h("ul", { class: "list compact" }, templates.map((t) => h("li", {}, button(`${t.name}${t.current_version || t.version ? ` · v${t.current_version || t.version}` : ""}`, () => edit(t.name), { class: "link", dataset: { template: t.name } })))),
    );
    if (selectName) edit(selectName);
    else if (templates.length) edit(templates[0].name);
    else edit(null);
  }

  async function edit(name) {
    let tpl = { name: "", description: "", body: "", variables: {}, variants: {}, tag: "", bindings: {} };
    let versions = [];
    if (name) {
      try {
        const full = await get(`templates/${encodeURIComponent(name)}`);
        tpl = { ...tpl, ...(full.current || full), name: full.name || name };
        versions = full.versions || [];
        const newest = versions.length ? versions.reduce((a, b) => (b.version > a.version ? b : a)) : null;
        if (newest && !full.body) tpl = { ...tpl, ...newest };
      } catch (err) {
        clear(editorBox, h("p", { class: "error-text" }, describeFailure(err)));
        return;
      }
    }
    for (const b of listBox.querySelectorAll("[data-template]")) b.setAttribute("aria-current", String(b.dataset.template === name));
    renderEditor(tpl, versions, Boolean(name));
  }

  function renderEditor(tpl, versions, exists) {
    const nameInput = h("input", { value: tpl.name, required: true, pattern: "[a-z0-9][a-z0-9_\\-]*", readonly: exists, "aria-describedby": "tpl-name-hint" });
    const description = h("input", { value: tpl.description || "" });
    const body = h("textarea", { rows: 8, class: "code", value: tpl.body || "", spellcheck: "false", "aria-label": "Body (Jinja)" });
    const variables = h("textarea", { rows: 4, class: "code", value: Object.entries(tpl.variables || {}).map(([k, v]) => `${k}=${v ?? ""}`).join("\n"), "aria-label": "Variables, one per line: name=example" });
    const variants = {};
    for (const c of CHANNELS) variants[c] = h("textarea", { rows: 3, class: "code", value: (tpl.variants || {})[c] || "", "aria-label": `${channelLabel[c]} wording (optional)` });
    const tag = select([["", "No tag"], "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"], tpl.tag || "", { "aria-label": "Messenger message tag" });
    const bindings = tpl.bindings || {};
    const twilioSid = h("input", { value: bindings.twilio?.content_sid || "", placeholder: "HX…" });
    const twilioVars = h("input", { value: Object.entries(bindings.twilio?.variables || {}).map(([k, v]) => `${k}=${v}`).join(", "), placeholder: "1=name, 2=order" });
    const cloudName = h("input", { value: bindings.cloud?.name || "", placeholder: "order_update" });
    const cloudLang = h("input", { value: bindings.cloud?.language || "", placeholder: "en_US" });
    const cloudParams = h("input", { value: (bindings.cloud?.parameters || []).join(", "), placeholder: "name, order" });
    const channel = select(CHANNELS.map((c) => [c, channelLabel[c]]), "whatsapp", { "aria-label": "Preview channel" });
    const draftOut = h("pre", { class: "rendered draft", "data-testid": "template-draft", "aria-live": "polite" });
    const previewOut = h("pre", { class: "rendered", "data-testid": "template-preview", "aria-live": "polite" });
    const previewMeta = h("p", { class: "muted preview-meta" });
    const validation = h("p", { class: "validation", role: "status", "data-testid": "template-validation" });
    const error = errorBox();
    const save = h("button", { type: "button", class: "primary" }, exists ? "Save new version" : "Create");
    const remove = exists ? h("button", { type: "button", class: "danger quiet" }, "Delete") : null;

    const draft = () => {
      const vars = {};
      for (const line of variables.value.split("\n")) {
        const [k, ...rest] = line.split("=");
        if (k.trim()) vars[k.trim()] = rest.join("=").trim();
      }
      const out = { name: nameInput.value.trim(), description: description.value.trim() || null, body: body.value, variables: vars, variants: {}, tag: tag.value || null, bindings: {} };
      for (const c of CHANNELS) if (variants[c].value.trim()) out.variants[c] = variants[c].value;
      if (twilioSid.value.trim()) {
        const map = {};
        for (const pair of twilioVars.value.split(",")) {
          const [k, v] = pair.split("=").map((x) => x && x.trim());
          if (k && v) map[k] = v;
        }
        out.bindings.twilio = { content_sid: twilioSid.value.trim(), variables: map };
      }
      if (cloudName.value.trim()) out.bindings.cloud = { name: cloudName.value.trim(), language: cloudLang.value.trim() || "en_US", parameters: cloudParams.value.split(",").map((x) => x.trim()).filter(Boolean) };
      return out;
    };

    // Immediate checks in the page (the hub repeats them, with the Jinja compiler, on save),
    // then the hub's own rendering of the saved version for the chosen channel.
    let generation = 0; // only the newest answer is shown (answers may arrive out of order)
    const preview = debounce(async () => {
      const mine = ++generation;
      const d = draft();
      error.clear();
      const problems = checkDraft(d, channel.value);
      const draftText = approximate(d, channel.value);
      draftOut.textContent = draftText;
      if (problems.length) {
        validation.dataset.state = "error";
        validation.textContent = `✗ ${problems.join(" ")}`;
      } else {
        validation.dataset.state = "ok";
        validation.textContent = `✓ No problem found (${draftText.length} characters on ${channelLabel[channel.value]}).`;
      }
      if (!exists) {
        clear(previewOut);
        previewMeta.textContent = "The hub renders the template once it is saved.";
        return;
      }
      try {
        const answer = await post(`templates/${encodeURIComponent(d.name)}/preview`, { variables: d.variables, channel: channel.value });
        if (mine !== generation) return;
        previewOut.textContent = answer.text ?? "";
        previewOut.classList.remove("error-text");
        const bind = answer.binding;
        previewMeta.textContent = [
          `${(answer.text || "").length} characters`,
          answer.version ? `saved v${answer.version}` : "",
          answer.tag ? `tag ${answer.tag}` : "",
          bind?.twilio ? `Twilio ${bind.twilio.content_sid} ${JSON.stringify(bind.twilio.content_variables || {})}` : "",
          bind?.cloud ? `Cloud API ${bind.cloud.name} (${bind.cloud.language}) ${JSON.stringify(bind.cloud.parameters || bind.cloud.components || [])}` : "",
        ].filter(Boolean).join(" · ");
      } catch (err) {
        if (mine !== generation) return;
        previewOut.classList.add("error-text");
        previewOut.textContent = `${err.message}${err.details?.line ? ` (line ${err.details.line})` : ""}`;
        previewMeta.textContent = "";
      }
    }, 300);

    for (const el of [body, variables, tag, twilioSid, twilioVars, cloudName, cloudLang, cloudParams, channel, ...Object.values(variants)]) {
      el.addEventListener("input", preview);
      el.addEventListener("change", preview);
    }

    save.addEventListener("click", () =>
      busy(save, async () => {
        error.clear();
        const d = draft();
        try {
          if (exists) {
            const { name: _ignored, ...rest } = d;
            await put(`templates/${encodeURIComponent(d.name)}`, rest);
          } else await post("templates", d);
          toast(exists ? "Saved: a new version." : "Template created.");
          loadList(d.name);
        } catch (err) {
          error.show(`${err.message}${err.details?.line ? ` (line ${err.details.line})` : ""}`);
        }
      }),
    );
    if (remove) {
      remove.addEventListener("click", () =>
        busy(remove, async () => {
          if (!confirm(`Delete the template ${tpl.name}?`)) return;
          try {
            await del(`templates/${encodeURIComponent(tpl.name)}`);
            toast("Template deleted.");
            loadList();
          } catch (err) {
            error.show(describeFailure(err));
          }
        }),
      );
    }

    const history = renderHistory(tpl.name, versions, () => loadList(tpl.name));
    clear(
      editorBox,
      h("h2", {}, exists ? `Template ${tpl.name}` : "New template"),
      h("div", { class: "grid-2" },
        h("div", {},
          field("Name", nameInput, exists ? "The name cannot change; it is how messages refer to the template." : "Lower case letters, digits, - and _."),
          field("Description", description),
          field("Body (Jinja)", body, "Variables as {{ name }}; context: contact, identity, agent, conversation, queue."),
          field("Variables (name=example, one per line)", variables),
          h("details", {}, h("summary", {}, "Per-channel wording"), CHANNELS.map((c) => field(`${channelLabel[c]} wording`, variants[c]))),
          h("fieldset", {}, h("legend", {}, "Provider-approved bindings"),
            field("Messenger tag", tag),
            field("Twilio Content SID", twilioSid),
            field("Twilio placeholders (1=variable, …)", twilioVars),
            field("Cloud API template name", cloudName),
            field("Cloud API language", cloudLang),
            field("Cloud API parameters (variables, in order)", cloudParams),
          ),
          error.el,
          h("div", { class: "row" }, save, remove),
        ),
        h("div", {},
          h("h3", {}, "Preview"),
          field("Channel", channel),
          validation,
          h("h4", {}, "This draft, with the example values"),
          draftOut,
          h("h4", {}, "Saved version, rendered by the hub"),
          previewOut,
          previewMeta,
          history,
        ),
      ),
    );
    preview();
  }

  function renderHistory(name, versions, reload) {
    const box = h("section", { class: "history-box", "aria-label": "Version history" }, h("h3", {}, "Versions"));
    if (!versions.length) {
      box.appendChild(h("p", { class: "muted" }, "No saved versions yet."));
      return box;
    }
    const sorted = [...versions].sort((a, b) => b.version - a.version);
    const from = select(sorted.map((v) => [v.version, `v${v.version}`]), sorted[1]?.version ?? sorted[0].version, { "aria-label": "Diff from version" });
    const to = select(sorted.map((v) => [v.version, `v${v.version}`]), sorted[0].version, { "aria-label": "Diff to version" });
    const diffOut = h("pre", { class: "diff", "data-testid": "template-diff" });
    const showDiff = button("Show diff", async (ev) => {
      await busy(ev.currentTarget, async () => {
        try {
          const answer = await get(`templates/${encodeURIComponent(name)}/diff?from=${from.value}&to=${to.value}`);
          renderDiff(diffOut, answer);
        } catch (err) {
          diffOut.textContent = describeFailure(err);
        }
      });
    });
    const list = h("ul", { class: "list compact" });
    for (const v of sorted) {
      list.appendChild(h("li", { class: "list-row" },
        h("span", {}, `v${v.version}`),
        h("small", { class: "muted" }, `${dateTime(v.created_at)}${v.created_by ? ` · ${agentName(v.created_by)}` : ""}`),
        v.version === sorted[0].version ? h("span", { class: "chip" }, "current") : button("Restore", async (ev) => {
          await busy(ev.currentTarget, async () => {
            try {
              await post(`templates/${encodeURIComponent(name)}/restore`, { version: v.version });
              toast(`Restored v${v.version} as a new version.`);
              reload();
            } catch (err) {
              toast(describeFailure(err), "error");
            }
          });
        }),
      ));
    }
    box.append(list, h("div", { class: "row" }, from, to, showDiff), diffOut);
    return box;
  }

  loadList();
}

function renderDiff(out, answer) {
  clear(out);
  const text = typeof answer === "string" ? answer : answer.diff ?? answer.unified ?? null;
  const lines = Array.isArray(text) ? text : typeof text === "string" ? text.split("\n") : null;
  if (lines) {
    for (const line of lines) out.appendChild(h("span", { class: line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "" }, `${line}\n`));
    return;
  }
  const changes = answer.changes || answer.fields || answer;
  for (const [key, value] of Object.entries(changes)) {
    if (key === "from" || key === "to" || key === "name") continue;
    out.appendChild(h("span", {}, `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}\n`));
  }
}

// What the page can tell at once; the hub's sandbox has the last word on save.
function checkDraft(d, channel) {
  const problems = [];
  if (!/^[a-z0-9][a-z0-9_-]{0,99}$/.test(d.name)) problems.push("The name must be lower case letters, digits, - or _.");
  const source = d.variants[channel] || d.body;
  if (!d.body.trim()) problems.push("The body is empty.");
  if (/__|\bmro\b|\bglobals\b|\bsubclasses\b|\bimport\b/.test(source)) problems.push("The body touches an unsafe attribute.");
  const declared = new Set(Object.keys(d.variables));
  const lines = source.split("\n");
  lines.forEach((line, i) => {
    for (const block of line.matchAll(/\{\{(.*?)\}\}|\{%(.*?)%\}/g)) {
      const expr = (block[1] ?? block[2] ?? "").replace(/(["'])(?:(?!\1).)*\1/g, "");
      const locals = new Set([...expr.matchAll(/\bfor\s+([A-Za-z_]\w*)/g)].map((m) => m[1]));
      for (const m of expr.matchAll(/(^|[^.\w|])([A-Za-z_]\w*)/g)) {
        const name = m[2];
        if (declared.has(name) || CONTEXT.includes(name) || JINJA_WORDS.has(name) || locals.has(name)) continue;
        problems.push(`Line ${i + 1}: '${name}' is not a declared variable.`);
      }
    }
    const open = (line.match(/\{\{/g) || []).length;
    const close = (line.match(/\}\}/g) || []).length;
    if (open !== close) problems.push(`Line ${i + 1}: unbalanced {{ }}.`);
  });
  const text = approximate(d, channel);
  if (text.length > LIMITS[channel]) problems.push(`About ${text.length} characters: over the ${channelLabel[channel]} limit of ${LIMITS[channel]}.`);
  return [...new Set(problems)];
}

// A quick local rendering: {{ name }} becomes the example value; control blocks are left out.
function approximate(d, channel) {
  const source = d.variants[channel] || d.body;
  return source
    .replace(/\{%.*?%\}/g, "")
    .replace(/\{\{\s*([A-Za-z_][\w.]*)[^}]*\}\}/g, (_, name) => (name in d.variables ? d.variables[name] : `‹${name}›`))
    .trim();
}
