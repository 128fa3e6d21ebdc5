// The Contacts screen (the manual's "CRM module → Contacts"): find a contact by name, company or phone, see
// their channels, and open the Send message window from one of them ("Click the Facebook/WhatsApp/Viber
// icon next to the Contact name in External contacts"). Only the identities that wrote to us can be
// messaged; the others are listed, without the button. A contact's name opens their record.

import { get, describeFailure } from "./api.js";
import { h, clear, button, items, debounce, dateTime, channelLabel } from "./util.js";
import { openOutbound } from "./outbound.js";

export function renderContacts(main) {
  const search = h("input", { type: "search", placeholder: "Name, company or phone", "aria-label": "Search contacts" });
  const list = h("ul", { class: "list", "data-testid": "contacts-list" });
  const status = h("p", { class: "muted", role: "status" });
  clear(
    main,
    h("section", { class: "panel" },
      h("h1", {}, "Contacts"),
      h("p", { class: "muted" }, "Only customers who wrote to us before can be sent a new message."),
      search,
      status,
      list,
    ),
  );
  let asked = 0;
  async function load() {
    const mine = ++asked;
    const q = search.value.trim();
    try {
      const page = await get(`contacts?limit=50${q ? `&q=${encodeURIComponent(q)}` : ""}`);
      if (mine !== asked) return; // a later search answered first
      const found = items(page);
      status.textContent = found.length ? "" : "No contact found.";
      clear(list, ...found.map(contactRow));
    } catch (err) {
      if (mine === asked) status.textContent = describeFailure(err);
    }
  }
  search.addEventListener("input", debounce(load, 250));
  load();
  search.focus();
}

function contactRow(contact) {
  return h("li", { class: "list-row", dataset: { contact: String(contact.id) } },
    // the name opens the contact's record (js/contact-page.js)
    h("a", { href: `#contact/${encodeURIComponent(contact.id)}`, class: "record-link", "aria-label": `Open the record of ${contact.name || `contact #${contact.id}`}` }, h("strong", {}, contact.name || "")),
    contact.company ? h("span", { class: "muted" }, contact.company) : null,
    contact.phone ? h("span", {}, contact.phone) : null,
    channelButtons(contact),
  );
}

// A button per channel on which the contact wrote to us, each opening the Send message window with that identity
// preselected (the contact's record and a ticket's page show the same); the others are named, without a button.
export function channelButtons(contact) {
  const channels = h("span", { class: "contact-channels" });
  const identities = Array.isArray(contact.identities) ? contact.identities : [];
  const wrote = identities.filter((i) => i.last_inbound_at).sort((a, b) => String(b.last_inbound_at).localeCompare(String(a.last_inbound_at)));
  if (!wrote.length) {
    channels.append(h("span", { class: "muted" }, identities.length ? "never wrote to us" : "no channel"));
    return channels;
  }
  channels.append(
    ...wrote.map((ident) =>
      button(
        `${channelLabel[ident.channel] || ident.channel}`,
        () => openOutbound({ channel: ident.channel, identities: [ident, ...wrote.filter((i) => i !== ident)], contact }),
        {
          class: `chip ch-${ident.channel}`,
          title: `Send a new message on ${channelLabel[ident.channel] || ident.channel} (last wrote ${dateTime(ident.last_inbound_at)})`,
          "aria-label": `Send a new message to ${contact.name} on ${channelLabel[ident.channel] || ident.channel}`,
        },
      ),
    ),
  );
  return channels;
}
