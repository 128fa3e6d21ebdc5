// The Tickets screen (the manual's "From a ticket": open the Ticket module, open the ticket, click the channel
// icon and choose the customer's number): find a ticket by text or #id, mine or my favourites, and open the
// Send message window for its contact, with their identities that wrote to us to choose from. A ticket's title
// opens its page.

import { get, describeFailure } from "./api.js";
import { h, clear, button, items, debounce, idOf } from "./util.js";
import { messageContact } from "./contact.js";

export function renderTicketsScreen(main) {
  const search = h("input", { type: "search", placeholder: "Title, text or #id", "aria-label": "Search tickets" });
  const mine = h("input", { type: "checkbox" });
  const favourite = h("input", { type: "checkbox" });
  const list = h("ul", { class: "list", "data-testid": "tickets-list" });
  const status = h("p", { class: "muted", role: "status" });
  clear(
    main,
    h("section", { class: "panel" },
      h("h1", {}, "Tickets"),
      search,
      h("div", { class: "filters", role: "group", "aria-label": "Ticket filters" },
        h("label", {}, mine, " Mine"),
        h("label", {}, favourite, " Favourites"),
      ),
      status,
      list,
    ),
  );
  let asked = 0;
  async function load() {
    const current = ++asked;
    const params = new URLSearchParams({ limit: "50" });
    if (search.value.trim()) params.set("q", search.value.trim());
    if (mine.checked) params.set("mine", "1");
    if (favourite.checked) params.set("favourite", "1");
    try {
      const found = items(await get(`tickets?${params}`));
      if (current !== asked) return; // a later search answered first
      status.textContent = found.length ? "" : "No ticket found.";
      clear(list, ...found.map(ticketRow));
    } catch (err) {
      if (current === asked) status.textContent = describeFailure(err);
    }
  }
  const soon = debounce(load, 250);
  search.addEventListener("input", soon);
  mine.addEventListener("change", load);
  favourite.addEventListener("change", load);
  load();
  search.focus();
}

function ticketRow(ticket) {
  const contactId = idOf(ticket.contact) ?? ticket.contact_id;
  const contactName = ticket.contact?.name || "";
  return h("li", { class: "list-row", dataset: { ticket: String(ticket.id) } },
    // the title opens the ticket's page (js/ticket-page.js)
    h("a", { href: `#ticket/${encodeURIComponent(ticket.id)}`, class: "record-link" }, h("strong", {}, `#${ticket.id} ${ticket.title || ""}`)),
    h("span", { class: "chip" }, ticket.state || ""),
    contactName ? h("span", { class: "muted" }, contactName) : h("span", { class: "muted" }, "no contact"),
    contactId !== undefined && contactId !== null
      ? button("Send a new message", () => messageContact({ id: contactId, name: contactName }), { "aria-label": `Send a new message about ticket #${ticket.id}` })
      : null,
  );
}
