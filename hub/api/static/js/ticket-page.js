// A ticket on the whole screen (the manual's "Open ticket in the Ticket module"): its fields, edited in place;
// a favourite toggle; the Send message buttons of its contact's channels that wrote to us (the manual's "From a
// ticket": "click the channel icon in the top right corner of the ticket"); and the conversations it is
// assigned to, each opening on the conversation screen or starting a new message on its channel.

import { get, put, del, toast, fail, describeFailure } from "./api.js";
import { h, clear, button, field, select, items, idOf, debounce } from "./util.js";
import { state, myId, agentName } from "./state.js";
import { modal, errorBox, busy } from "./ui.js";
import { openOutbound } from "./outbound.js";
import { channelButtons } from "./contacts.js";
import { conversationsSection, recordFrame, recordFailure, showSaveFailure } from "./records.js";

const STATES = [["open", "Open"], ["pending", "Pending"], ["closed", "Closed"]];

export async function renderTicketPage(main, id, { onBack } = {}) {
  clear(main, h("p", { class: "muted" }, "Loading…"));
  let ticket;
  try {
    ticket = await get(`tickets/${encodeURIComponent(id)}`);
  } catch (err) {
    recordFailure(main, err, onBack);
    return;
  }
  const channels = h("div", { class: "record-channels", "data-testid": "ticket-channels" });
  const favourite = button("", () => toggleFavourite(), { class: "icon-button" });
  const form = ticketForm(ticket, (saved) => {
    ticket = saved;
    heading.textContent = title();
    showChannels();
  });
  const title = () => `#${ticket.id} ${ticket.title}`;
  const heading = recordFrame(
    main,
    { title: title(), onBack, testid: "ticket-page" },
    h("div", { class: "row" }, favourite, channels),
    form,
    conversationsSection(`tickets/${encodeURIComponent(ticket.id)}/conversations`, {
      empty: "The ticket is not assigned to a conversation.",
      // the manual: a past activity in the ticket that was a channel message can start a new message too
      extra: (c) => button("Send a new message", () => openOutbound({ channel: c.channel, identities: [{ ...c.identity, channel: c.channel }] }), { class: "quiet", "aria-label": `Send a new message on the channel of conversation #${c.id}` }),
    }),
  );

  function showFavourite() {
    favourite.textContent = ticket.favourite ? "★" : "☆";
    favourite.setAttribute("aria-pressed", String(Boolean(ticket.favourite)));
    favourite.setAttribute("aria-label", ticket.favourite ? "Remove from my favourites" : "Add to my favourites");
  }

  async function toggleFavourite() {
    await busy(favourite, async () => {
      try {
        const path = `tickets/${encodeURIComponent(ticket.id)}/favourite`;
        ticket = ticket.favourite ? await del(path) : await put(path, {});
      } catch (err) {
        fail(err, "Favourite");
      }
      showFavourite();
    });
  }

  // the contact's channels that wrote to us, each a Send message button (js/contacts.js)
  async function showChannels() {
    const contactId = idOf(ticket.contact);
    if (contactId === undefined || contactId === null) {
      clear(channels, h("span", { class: "muted" }, "No contact: choose one to message them."));
      return;
    }
    try {
      const contact = await get(`contacts/${encodeURIComponent(contactId)}`);
      clear(channels, h("span", { class: "muted" }, "Send a new message: "), channelButtons(contact));
    } catch (err) {
      clear(channels, h("span", { class: "muted" }, describeFailure(err)));
    }
  }

  showFavourite();
  showChannels();
}

// The ticket's fields; Save sends them all (an empty one clears it) and shows the hub's refusal in its words,
// on the field it names.
function ticketForm(ticket, onSaved) {
  let contact = ticket.contact || null; // {id, name} or null, as chosen
  const inputs = {
    title: h("input", { value: ticket.title || "", required: true }),
    description: h("textarea", { rows: 5, value: ticket.description || "" }),
    state: select(STATES, ticket.state),
    company: h("input", { value: ticket.company || "" }),
    assignee: select(assigneeOptions(ticket.assignee), ticket.assignee ?? ""),
  };
  const contactName = h("span", { class: "ticket-contact" });
  const contactButtons = h("span", { class: "row" });
  const showContact = () => {
    clear(contactName, contact
      ? h("a", { href: `#contact/${encodeURIComponent(contact.id)}`, "aria-label": `Open the record of ${contact.name || `contact #${contact.id}`}` }, contact.name || `contact #${contact.id}`)
      : h("span", { class: "muted" }, "No contact"));
    clear(contactButtons,
      button("Change…", () => chooseContact((chosen) => {
        contact = chosen;
        showContact();
      }), { class: "quiet" }),
      contact ? button("Remove", () => {
        contact = null;
        showContact();
      }, { class: "quiet", "aria-label": "Remove the contact" }) : null,
    );
  };
  showContact();
  const error = errorBox();
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  const form = h("form", { class: "record-form", "aria-label": "Ticket details", novalidate: true },
    field("Title", inputs.title),
    field("Description", inputs.description),
    h("div", { class: "grid-2" },
      field("State", inputs.state),
      field("Assignee", inputs.assignee),
      h("div", { class: "field", role: "group", "aria-labelledby": "ticket-contact-label" }, h("span", { class: "label", id: "ticket-contact-label" }, "Contact"), h("div", { class: "row" }, contactName, contactButtons)),
      field("Company", inputs.company),
    ),
    error.el,
    h("div", { class: "row" }, save),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(save, async () => {
      error.clear();
      for (const el of Object.values(inputs)) el.removeAttribute("aria-invalid");
      const body = {
        title: inputs.title.value.trim(),
        description: inputs.description.value.trim() || null,
        state: inputs.state.value,
        contact: contact ? Number(contact.id) : null,
        company: inputs.company.value.trim() || null,
        assignee: inputs.assignee.value ? Number(inputs.assignee.value) : null,
      };
      try {
        const saved = await put(`tickets/${encodeURIComponent(ticket.id)}`, body);
        contact = saved.contact || null;
        inputs.company.value = saved.company || "";
        showContact();
        toast("Ticket saved.");
        onSaved(saved);
      } catch (err) {
        showSaveFailure(error, inputs, err);
      }
    });
  });
  return form;
}

// nobody, me, the agents a supervisor knows, and whoever is assigned now
function assigneeOptions(current) {
  const options = [["", "Nobody"]];
  const me = myId();
  if (me !== undefined && me !== null) options.push([String(me), `Me (${agentName(me)})`]);
  for (const agent of state.agents) if (String(agent.id) !== String(me)) options.push([String(agent.id), agent.display_name || agent.login]);
  if (current !== undefined && current !== null && !options.some(([value]) => value === String(current))) options.push([String(current), agentName(current)]);
  return options;
}

// search the contacts and pick one for the ticket
function chooseContact(onChosen) {
  const dlg = modal("Choose a contact", { label: "ticket-contact" });
  const search = h("input", { type: "search", placeholder: "Name, phone or company", "aria-label": "Search contacts" });
  const list = h("ul", { class: "list" });
  const error = errorBox();
  dlg.body.append(search, list, error.el);
  let asked = 0;
  const run = debounce(async () => {
    const mine = ++asked;
    try {
      const found = items(await get(`contacts?limit=20&q=${encodeURIComponent(search.value.trim())}`));
      if (mine !== asked) return;
      clear(list, found.length ? null : h("li", { class: "muted" }, "No contact matches."));
      for (const c of found) {
        list.appendChild(h("li", { class: "list-row" },
          h("span", {}, c.name, c.company ? h("small", { class: "muted" }, ` · ${c.company}`) : null),
          button("Choose", () => {
            dlg.close();
            onChosen({ id: c.id, name: c.name });
          }, { "aria-label": `Choose ${c.name}` }),
        ));
      }
    } catch (err) {
      error.show(describeFailure(err));
    }
  }, 250);
  search.addEventListener("input", run);
  run();
  search.focus();
}
