// A contact's record (the manual's "View the record in the CRM module", "Edit the CRM record"): the fields,
// edited in place; the paired identities, their channel and whether they wrote to us, with Send a new message
// on those that did (js/contacts.js); the contact's conversations and tickets, each opening its own screen.

import { get, put, toast, describeFailure } from "./api.js";
import { h, clear, button, field, items, dateTime, channelLabel } from "./util.js";
import { errorBox, busy } from "./ui.js";
import { CONTACT_FIELDS } from "./contact.js";
import { channelButtons } from "./contacts.js";
import { conversationsSection, recordFrame, recordFailure, showSaveFailure } from "./records.js";

export async function renderContactPage(main, id, { onBack } = {}) {
  clear(main, h("p", { class: "muted" }, "Loading…"));
  let contact;
  try {
    contact = await get(`contacts/${encodeURIComponent(id)}`);
  } catch (err) {
    recordFailure(main, err, onBack);
    return;
  }
  const channels = h("div", { class: "record-channels" });
  const identities = h("section", { class: "record-section", "aria-labelledby": "contact-ids-h" });
  const form = contactForm(contact, (saved) => {
    contact = { ...contact, ...saved };
    heading.textContent = contact.name;
    showIdentities();
  });
  const heading = recordFrame(
    main,
    { title: contact.name, onBack, testid: "contact-page" },
    h("p", { class: "muted" }, `Contact #${contact.id}`),
    channels,
    form,
    identities,
    conversationsSection(`contacts/${encodeURIComponent(contact.id)}/conversations`, { empty: "No conversations yet." }),
    ticketsSection(contact.id),
  );
  function showIdentities() {
    clear(channels, h("span", { class: "muted" }, "Send a new message: "), channelButtons(contact));
    const list = Array.isArray(contact.identities) ? contact.identities : [];
    clear(
      identities,
      h("h2", { id: "contact-ids-h" }, "Channels"),
      list.length
        ? h("ul", { class: "list compact", "data-testid": "contact-identities" }, list.map((ident) => h("li", { class: "list-row", dataset: { identity: String(ident.id) } },
            h("span", { class: `chip ch-${ident.channel}` }, channelLabel[ident.channel] || ident.channel || ""),
            h("span", {}, ident.external_id || ""),
            ident.display_name ? h("span", { class: "muted" }, ident.display_name) : null,
            h("span", { class: "muted" }, ident.account || ""),
            h("span", {}, ident.last_inbound_at ? `wrote to us ${dateTime(ident.last_inbound_at)}` : "never wrote to us"),
          )))
        : h("p", { class: "muted" }, "No channel is paired with this contact. Pair one from a conversation's Contact widget."),
    );
  }
  showIdentities();
}

// The contact's fields; Save sends them all (an empty one clears it) and shows the hub's refusal in its words,
// on the field it names.
function contactForm(contact, onSaved) {
  const inputs = {};
  const fields = CONTACT_FIELDS.map(([key, label, type]) => {
    inputs[key] = type === "textarea" ? h("textarea", { rows: 3, value: contact[key] ?? "" }) : h("input", { type, value: contact[key] ?? "", required: key === "name" });
    return field(label, inputs[key]);
  });
  const error = errorBox();
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  const form = h("form", { class: "record-form", "aria-label": "Contact details", novalidate: true }, h("div", { class: "grid-2" }, fields), error.el, h("div", { class: "row" }, save));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(save, async () => {
      error.clear();
      for (const el of Object.values(inputs)) el.removeAttribute("aria-invalid");
      const body = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim() || null]));
      try {
        const saved = await put(`contacts/${encodeURIComponent(contact.id)}`, body);
        for (const [key] of CONTACT_FIELDS) inputs[key].value = saved[key] ?? "";
        toast("Contact saved.");
        onSaved(saved);
      } catch (err) {
        showSaveFailure(error, inputs, err);
      }
    });
  });
  return form;
}

function ticketsSection(contactId) {
  const list = h("ul", { class: "list compact", "data-testid": "contact-tickets" });
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  get(`tickets?contact=${encodeURIComponent(contactId)}`)
    .then((page) => {
      const found = items(page);
      status.textContent = found.length ? "" : "No tickets.";
      clear(list, ...found.map((t) => h("li", { class: "list-row", dataset: { ticket: String(t.id) } },
        h("a", { href: `#ticket/${encodeURIComponent(t.id)}` }, `#${t.id} ${t.title || ""}`),
        h("span", { class: "chip" }, t.state || ""),
      )));
    })
    .catch((err) => {
      status.textContent = describeFailure(err);
    });
  return h("section", { class: "record-section", "aria-labelledby": "contact-tickets-h" }, h("h2", { id: "contact-tickets-h" }, "Tickets"), status, list);
}
