// The contact panel beside a conversation: the paired contact (edit, unpair,
// add new, pair existing, open its record), the contact's past conversations, and the ticket
// widget (search, filters, create, assign, open a ticket's page).

import { get, post, put, del, toast, fail, describeFailure, isMissingRoute } from "./api.js";
import { h, clear, button, field, dateTime, items, idOf, pick, debounce, channelLabel } from "./util.js";
import { customerName, identityId, queueOf, agentName } from "./state.js";
import { modal, errorBox, busy } from "./ui.js";
import { registerWidget } from "./widgets.js";
import { openOutbound } from "./outbound.js";
import { slaWidget } from "./reports.js";

export const CONTACT_FIELDS = [
  ["name", "Name", "text"],
  ["company", "Company", "text"],
  ["phone", "Phone", "tel"],
  ["email", "E-mail", "email"],
  ["time_zone", "Time zone", "text"],
  ["notes", "Notes", "textarea"],
];

// the three widgets share one read of the contact: each registered widget hands its box to the group,
// which loads once the side panel has placed them all (a widget the agent hides gets no box and no request)
function contactGroup(conv, ctx) {
  if (!ctx.shared.contactGroup) {
    const boxes = {};
    ctx.shared.contactGroup = boxes;
    Promise.resolve().then(() => fillContactWidgets(boxes, conv, { onChanged: ctx.onChanged, showEarlier: ctx.showEarlier }));
  }
  return ctx.shared.contactGroup;
}

registerWidget("contact", { title: "Contact", order: 10, render: (box, conv, ctx) => (contactGroup(conv, ctx).contact = box) });
registerWidget("activities", { title: "Past conversations", order: 20, render: (box, conv, ctx) => (contactGroup(conv, ctx).activities = box) });
registerWidget("ticket", { title: "Ticket", order: 30, render: (box, conv, ctx) => (contactGroup(conv, ctx).ticket = box) });
// the queue's service level today (js/reports.js); hidden when the queue has no SLA targets
registerWidget("sla", { title: "SLA", order: 35, render: (box, conv) => box.append(slaWidget(conv)) });

// every widget at once, outside the side panel (the offer's customer name opens them in a dialog)
export function renderContactPanel(side, conv, { onChanged } = {}) {
  const boxes = { contact: h("section", { class: "widget" }), activities: h("section", { class: "widget" }), ticket: h("section", { class: "widget" }) };
  clear(side, boxes.contact, boxes.activities, boxes.ticket);
  fillContactWidgets(boxes, conv, { onChanged });
}

// "Send a new message" to this contact: their identities that wrote to us, preselected in the Send message window
export async function messageContact(contact, fallbackIdentity) {
  let identities = Array.isArray(contact.identities) ? contact.identities : [];
  if (!identities.length) {
    try {
      identities = (await get(`contacts/${contact.id}`)).identities || [];
    } catch {
      identities = [];
    }
  }
  if (!identities.length && fallbackIdentity) identities = [fallbackIdentity];
  // only customers who wrote to us can be messaged: those identities, the most recent writer first
  const wrote = identities.filter((i) => i.last_inbound_at).sort((a, b) => String(b.last_inbound_at).localeCompare(String(a.last_inbound_at)));
  openOutbound({ channel: (wrote[0] || identities[0])?.channel, identities: wrote, contact });
}

function newMessageButton(contact, ident) {
  return button("Send a new message", () => messageContact(contact, ident), { "data-testid": "contact-new-message" });
}

function fillContactWidgets(boxes, conv, { onChanged, showEarlier } = {}) {
  const contactBox = boxes.contact || h("section");
  const activitiesBox = boxes.activities || null;
  const ticketBox = boxes.ticket || null;
  contactBox.classList.add("contact-widget");
  contactBox.setAttribute("aria-labelledby", `contact-h-${conv.id}`);
  activitiesBox?.setAttribute("aria-labelledby", `acts-h-${conv.id}`);
  if (ticketBox) {
    ticketBox.classList.add("ticket-widget");
    ticketBox.setAttribute("aria-labelledby", `ticket-h-${conv.id}`);
  }
  const identity = identityId(conv);
  let contact = null;
  let currentIdent = null;

  async function load() {
    let ident = conv.identity || {};
    if (identity !== undefined) {
      try {
        ident = await get(`identities/${identity}`);
      } catch (err) {
        if (!isMissingRoute(err)) fail(err, "Contact");
      }
    }
    const paired = ident.contact || conv.contact;
    contact = null;
    if (paired && idOf(paired) !== undefined) {
      try {
        contact = await get(`contacts/${idOf(paired)}`);
      } catch {
        contact = typeof paired === "object" ? paired : { id: paired };
      }
    }
    currentIdent = { ...ident, id: ident.id ?? identity, channel: ident.channel || conv.channel };
    if (boxes.contact) renderContact(ident);
    if (activitiesBox) renderActivities();
    if (ticketBox) renderTickets();
  }

  function renderContact(ident) {
    const rows = [
      ["Channel", `${channelLabel[ident.channel || conv.channel] || ""} ${ident.account || conv.account || ""}`.trim()],
      ["Customer id", ident.external_id || conv.identity?.external_id || ""],
      ["Name on channel", ident.display_name || ""],
      ["Last wrote", ident.last_inbound_at ? dateTime(ident.last_inbound_at) : ""],
    ];
    const head = h("h2", { id: `contact-h-${conv.id}` }, "Contact");
    if (!contact) {
      clear(
        contactBox,
        head,
        facts(rows),
        h("p", { class: "muted" }, "No CRM contact is paired with this customer."),
        h("div", { class: "row" },
          button("Add new contact", () => editContact(null, ident), { class: "primary" }),
          button("Pair existing…", () => pairExisting(ident)),
        ),
      );
      return;
    }
    clear(
      contactBox,
      head,
      h("p", { class: "contact-name" }, h("strong", {}, contact.name || ""), contact.company ? h("span", { class: "muted" }, ` · ${contact.company}`) : null),
      // the manual's "View the record in the CRM module": the record's page (js/contact-page.js)
      h("p", {}, recordLink(`#contact/${encodeURIComponent(contact.id)}`, "Open the CRM record", `Open the CRM record of ${contact.name || `contact #${contact.id}`}`)),
      facts([
        ["Phone", contact.phone || ""],
        ["E-mail", contact.email || ""],
        ["Time zone", contact.time_zone || ""],
        ["Notes", contact.notes || ""],
        ...rows,
      ]),
      h("div", { class: "row" },
        newMessageButton(contact, currentIdent),
        button("Edit", () => editContact(contact, ident)),
        button("Unpair", async (ev) => {
          await busy(ev.currentTarget, async () => {
            try {
              await del(`identities/${identity}/contact`);
              toast("Contact unpaired.");
              load();
            } catch (err) {
              fail(err, "Unpair");
            }
          });
        }, { class: "quiet" }),
      ),
    );
  }

  function editContact(existing, ident) {
    const dlg = modal(existing ? "Edit contact" : "New contact", { label: "contact" });
    const inputs = {};
    for (const [key, label, type] of CONTACT_FIELDS) {
      const value = existing ? existing[key] ?? "" : key === "name" ? ident.display_name || "" : key === "phone" ? ident.phone || (conv.channel === "whatsapp" ? ident.external_id || "" : "") : "";
      inputs[key] = type === "textarea" ? h("textarea", { rows: 3, value }) : h("input", { type, value, required: key === "name" });
      dlg.body.appendChild(field(label, inputs[key]));
    }
    const error = errorBox();
    dlg.body.appendChild(error.el);
    const save = h("button", { type: "button", class: "primary" }, existing ? "Save" : "Create and pair");
    dlg.footer.append(save);
    save.addEventListener("click", () =>
      busy(save, async () => {
        error.clear();
        const body = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim() || null]));
        try {
          if (existing) contact = await put(`contacts/${existing.id}`, body);
          else {
            // "Add new contact": create and pair in one step
            for (const key of Object.keys(body)) if (body[key] === null) delete body[key];
            await post(`identities/${identity}/contact`, body);
          }
          dlg.close();
          toast(existing ? "Contact saved." : "Contact created and paired.");
          load();
        } catch (err) {
          error.show(describeFailure(err));
        }
      }),
    );
    inputs.name.focus();
  }

  async function pair(contactId) {
    await put(`identities/${identity}/contact`, { contact: contactId });
  }

  function pairExisting(ident) {
    const dlg = modal("Pair a contact", { label: "pair" });
    const search = h("input", { type: "search", placeholder: "Name, phone or company", "aria-label": "Search contacts", value: ident.display_name || "" });
    const list = h("ul", { class: "list" });
    const error = errorBox();
    dlg.body.append(search, list, error.el);
    const run = debounce(async () => {
      try {
        const found = items(await get(`contacts?q=${encodeURIComponent(search.value.trim())}`));
        clear(list);
        if (!found.length) list.appendChild(h("li", { class: "muted" }, "No contact matches."));
        for (const c of found) {
          list.appendChild(h("li", { class: "list-row" }, h("span", {}, c.name, c.company ? h("small", { class: "muted" }, ` · ${c.company}`) : null, c.phone ? h("small", { class: "muted" }, ` · ${c.phone}`) : null), button("Pair", async (ev) => {
            await busy(ev.currentTarget, async () => {
              try {
                await pair(c.id);
                dlg.close();
                toast(`Paired with ${c.name}.`);
                load();
              } catch (err) {
                error.show(describeFailure(err));
              }
            });
          })));
        }
      } catch (err) {
        error.show(describeFailure(err));
      }
    }, 250);
    search.addEventListener("input", run);
    run();
    search.focus();
  }

  async function renderActivities() {
    const head = h("h2", { id: `acts-h-${conv.id}` }, "Past conversations");
    if (!contact) {
      clear(activitiesBox, head, h("p", { class: "muted" }, "Pair a contact to see their past conversations on every channel."));
      return;
    }
    clear(activitiesBox, head, h("p", { class: "muted" }, "Loading…"));
    try {
      const list = items(await get(`contacts/${contact.id}/conversations`)).filter((c) => String(c.id) !== String(conv.id));
      clear(activitiesBox, head, list.length
        ? h("ul", { class: "list compact" }, list.slice(0, 20).map((c) => h("li", {},
            h("span", { class: `chip ch-${c.channel}` }, channelLabel[c.channel] || c.channel),
            ` #${c.id} ${dateTime(c.opened_at)} · ${queueOf(c).name || ""} · ${c.state}${c.status ? ` (${c.status})` : ""} `,
            // open it in the history beside (which runs on into the customer's earlier conversations)
            showEarlier ? button("Open", () => showEarlier(c.id), { class: "link", "aria-label": `Open conversation #${c.id}` }) : null)))
        : h("p", { class: "muted" }, "No earlier conversations."));
    } catch (err) {
      clear(activitiesBox, head, h("p", { class: "muted" }, isMissingRoute(err) ? "Past conversations are not available on this hub." : describeFailure(err)));
    }
  }

  function renderTickets() {
    const head = h("h2", { id: `ticket-h-${conv.id}` }, "Ticket");
    const assigned = h("p", { class: "assigned-ticket" });
    const search = h("input", { type: "search", placeholder: "Search tickets", "aria-label": "Search tickets" });
    const filters = {
      favourite: h("input", { type: "checkbox" }),
      mine: h("input", { type: "checkbox" }),
      contact: h("input", { type: "checkbox", disabled: !contact }),
      company: h("input", { type: "checkbox", disabled: !contact?.company }),
    };
    const filterRow = h("div", { class: "filters", role: "group", "aria-label": "Ticket filters" },
      h("label", {}, filters.favourite, " Favourites"),
      h("label", {}, filters.mine, " Mine"),
      h("label", {}, filters.contact, " This contact"),
      h("label", {}, filters.company, " This company"),
    );
    const list = h("ul", { class: "list compact" });
    const error = errorBox();
    const create = button("New ticket", () => newTicket());
    // "Send a new message" from the ticket: to its contact (or this conversation's), through the identities that wrote
    const messageButton = button("Send a new message", () => messageFromTicket(), { "data-testid": "ticket-new-message" });
    clear(ticketBox, head, assigned, search, filterRow, list, error.el, h("div", { class: "row" }, create, messageButton));
    async function messageFromTicket() {
      const ticketId = idOf(conv.ticket) ?? conv.ticket_id;
      let target = contact;
      if (ticketId) {
        try {
          const ticket = await get(`tickets/${ticketId}`);
          const ticketContact = idOf(ticket.contact) ?? ticket.contact_id;
          if (ticketContact !== undefined && ticketContact !== null) target = { id: ticketContact };
        } catch {
          // the conversation's own contact will do
        }
      }
      if (target) messageContact(target, currentIdent);
      else openOutbound({ channel: conv.channel, identities: currentIdent ? [currentIdent] : [] });
    }
    const showAssigned = (id, title) => {
      if (!id) return clear(assigned, "No ticket assigned.");
      // the manual's "Open ticket in the Ticket module": the ticket's page (js/ticket-page.js)
      clear(assigned, `Assigned: ticket #${id}${title ? ` ${title}` : ""} `, recordLink(`#ticket/${encodeURIComponent(id)}`, "Open", `Open ticket #${id}`));
    };
    const ticketId = idOf(conv.ticket) ?? conv.ticket_id;
    showAssigned(ticketId, conv.ticket?.title);

    const run = debounce(async () => {
      const params = new URLSearchParams();
      if (search.value.trim()) params.set("q", search.value.trim());
      if (filters.favourite.checked) params.set("favourite", "1");
      if (filters.mine.checked) params.set("mine", "1");
      if (filters.contact.checked && contact) params.set("contact", contact.id);
      if (filters.company.checked && contact?.company) params.set("company", contact.company);
      try {
        const found = items(await get(`tickets?${params}`));
        clear(list);
        if (!found.length) list.appendChild(h("li", { class: "muted" }, "No ticket matches."));
        for (const t of found.slice(0, 15)) {
          list.appendChild(h("li", { class: "list-row" },
            h("span", {}, `#${t.id} ${t.title}`, h("small", { class: "muted" }, ` · ${t.state}${t.contact?.name ? ` · ${t.contact.name}` : ""}`)),
            button(t.favourite ? "★" : "☆", (ev) => favourite(t, ev.currentTarget), { class: "icon-button", "aria-label": t.favourite ? `Remove ticket ${t.id} from favourites` : `Add ticket ${t.id} to favourites`, "aria-pressed": String(Boolean(t.favourite)) }),
            button("Assign", (ev) => assign(t, ev.currentTarget)),
            recordLink(`#ticket/${encodeURIComponent(t.id)}`, "Open", `Open ticket #${t.id}`),
          ));
        }
      } catch (err) {
        clear(list, h("li", { class: "muted" }, isMissingRoute(err) ? "Tickets are not available on this hub." : describeFailure(err)));
      }
    }, 250);

    async function favourite(t, control) {
      await busy(control, async () => {
        try {
          if (t.favourite) await del(`tickets/${t.id}/favourite`);
          else await put(`tickets/${t.id}/favourite`, {});
          run();
        } catch (err) {
          fail(err, "Favourite");
        }
      });
    }

    async function assign(t, control) {
      await busy(control, async () => {
        error.clear();
        try {
          await post(`conversations/${conv.id}/ticket`, { ticket: t.id });
          conv.ticket_id = t.id;
          conv.ticket = t;
          showAssigned(t.id, t.title);
          toast(`Ticket #${t.id} assigned.`);
          if (onChanged) onChanged();
        } catch (err) {
          error.show(describeFailure(err));
        }
      });
    }

    function newTicket() {
      const dlg = modal("New ticket", { label: "ticket" });
      const title = h("input", { required: true, value: `${customerName(conv)}: ` });
      const description = h("textarea", { rows: 4 });
      const assignToo = h("input", { type: "checkbox", checked: true });
      const err = errorBox();
      dlg.body.append(field("Title", title), field("Description", description), h("label", {}, assignToo, " Assign to this conversation"), err.el);
      const save = h("button", { type: "button", class: "primary" }, "Create");
      dlg.footer.append(save);
      save.addEventListener("click", () =>
        busy(save, async () => {
          try {
            const body = { title: title.value.trim(), description: description.value.trim() || null };
            if (contact) {
              body.contact = contact.id;
              if (contact.company) body.company = contact.company;
            }
            const created = await post("tickets", body);
            if (assignToo.checked) await post(`conversations/${conv.id}/ticket`, { ticket: created.id });
            dlg.close();
            if (assignToo.checked) showAssigned(created.id, created.title);
            toast(`Ticket #${created.id} created.`);
            run();
            if (onChanged) onChanged();
          } catch (e) {
            err.show(describeFailure(e));
          }
        }),
      );
      title.focus();
    }

    search.addEventListener("input", run);
    for (const f of Object.values(filters)) f.addEventListener("change", run);
    run();
  }

  load();
}

// a link to a record's page; the offer's contact dialog closes as the page opens (app.js, on the hash change)
function recordLink(href, text, label) {
  return h("a", { href, class: "record-link", "aria-label": label }, text);
}

function facts(rows) {
  return h("dl", { class: "facts" }, rows.filter(([, v]) => v).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// the offer's customer name opens the contact in a dialog
export function openContact(conv) {
  const dlg = modal(`Contact: ${customerName(conv)}`, { label: "contact-view" });
  renderContactPanel(dlg.body, conv, {});
}
