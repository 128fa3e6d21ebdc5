// The conversation screen's side panel: a registry of widgets and the agent's layout of them.
//
// A widget registers itself once, by id, when its module loads:
//
//   import { registerWidget } from "./widgets.js";
//   registerWidget("articles", {
//     title: "Articles",                       // shown in the layout control
//     order: 40,                               // place in the default layout (lower first)
//     render(box, conv, ctx) { ... },          // fill `box` (a <section class="widget">) for conversation `conv`
//   });
//
// `ctx` holds { onChanged, insertText, shared } for the one conversation on screen: `onChanged()` asks the
// message widget to reload its history; `shared` is a plain object the widgets of one screen may use to
// share work (the contact widgets read the contact once). The agent's layout (which widgets are shown
// and in what order) is kept by the hub per agent: GET/PUT /api/v1/me/layout {"widgets": [...]}.
// An agent who never saved one sees every registered widget with `defaultShown !== false`, by `order`.

import { get, put, describeFailure } from "./api.js";
import { h, clear } from "./util.js";
import { modal, errorBox, busy } from "./ui.js";

const registry = new Map(); // id -> { id, title, order, defaultShown, render }
let saved = null; // the agent's saved widget ids, in order; null: never saved (the default layout)
let loaded = null; // the promise of the first read of the saved layout

export function registerWidget(id, { title, order = 100, defaultShown = true, render }) {
  if (!/^[a-z][a-z0-9_-]{0,39}$/.test(id)) throw new Error(`widget id ${id} must be lower-case letters, digits, - or _`);
  if (typeof render !== "function") throw new Error(`widget ${id} needs a render(box, conv, ctx) function`);
  registry.set(id, { id, title: title || id, order, defaultShown, render });
}

export function registeredWidgets() {
  return [...registry.values()].sort((a, b) => a.order - b.order || a.id.localeCompare(b.id));
}

// the widget ids shown now, in order: the saved layout (widgets no longer registered left out), else the default
export function shownWidgets() {
  if (saved === null) return registeredWidgets().filter((w) => w.defaultShown).map((w) => w.id);
  return saved.filter((id) => registry.has(id));
}

export function loadLayout({ force = false } = {}) {
  if (!loaded || force) {
    loaded = get("me/layout")
      .then((answer) => {
        saved = Array.isArray(answer?.widgets) ? answer.widgets : null;
      })
      .catch(() => {
        saved = null; // a hub without layouts (or a failed read): the default layout
      });
  }
  return loaded;
}

export function forgetLayout() {
  saved = null;
  loaded = null;
}

export async function saveLayout(widgets) {
  const answer = await put("me/layout", { widgets });
  saved = Array.isArray(answer?.widgets) ? answer.widgets : widgets;
  return saved;
}

// Fill the side panel of conversation `conv`: the layout control, then each shown widget in order.
// `showEarlier(id)` brings one of the customer's earlier conversations into view in the history beside.
export async function renderSidePanel(side, conv, { onChanged, insertText, showEarlier } = {}) {
  await loadLayout();
  const ctx = { onChanged: onChanged || (() => {}), insertText: insertText || (() => {}), showEarlier, shared: {} };
  const draw = () => {
    ctx.shared = {};
    const head = h("div", { class: "side-head" },
      h("button", { type: "button", class: "quiet", "data-testid": "layout-button", "aria-haspopup": "dialog", onclick: () => openLayoutControl(draw) }, "Widgets…"),
    );
    const boxes = [];
    for (const id of shownWidgets()) {
      const widget = registry.get(id);
      const box = h("section", { class: `widget widget-${id}`, dataset: { widget: id }, "aria-label": widget.title });
      boxes.push(box);
      try {
        widget.render(box, conv, ctx);
      } catch (err) {
        clear(box, h("h2", {}, widget.title), h("p", { class: "error-text" }, `This widget failed: ${describeFailure(err)}`));
      }
    }
    if (!boxes.length) boxes.push(h("p", { class: "muted" }, "No widgets shown. Choose them with Widgets…"));
    clear(side, head, ...boxes);
  };
  draw();
}

// The layout control: a checkbox per registered widget (shown or not) and up/down to reorder.
export function openLayoutControl(onSaved) {
  const dlg = modal("Side panel widgets", { label: "layout" });
  const shown = new Set(shownWidgets());
  let order = [...shownWidgets(), ...registeredWidgets().map((w) => w.id).filter((id) => !shown.has(id))];
  const list = h("ol", { class: "layout-list", "aria-label": "Widgets, in the order shown" });
  const error = errorBox();
  const render = () => {
    clear(list);
    order.forEach((id, i) => {
      const widget = registry.get(id);
      const box = h("input", { type: "checkbox", checked: shown.has(id), "aria-label": `Show ${widget.title}` });
      box.addEventListener("change", () => (box.checked ? shown.add(id) : shown.delete(id)));
      const move = (step) => {
        const j = i + step;
        if (j < 0 || j >= order.length) return;
        [order[i], order[j]] = [order[j], order[i]];
        render();
        list.querySelectorAll("li")[j]?.querySelector(step < 0 ? "[data-move=up]" : "[data-move=down]")?.focus();
      };
      list.appendChild(h("li", { class: "layout-row", dataset: { widget: id } },
        h("label", {}, box, ` ${widget.title}`),
        h("span", { class: "spacer" }),
        h("button", { type: "button", class: "icon-button", dataset: { move: "up" }, "aria-label": `Move ${widget.title} up`, disabled: i === 0, onclick: () => move(-1) }, "↑"),
        h("button", { type: "button", class: "icon-button", dataset: { move: "down" }, "aria-label": `Move ${widget.title} down`, disabled: i === order.length - 1, onclick: () => move(1) }, "↓"),
      ));
    });
  };
  const save = h("button", { type: "button", class: "primary" }, "Save");
  save.addEventListener("click", () =>
    busy(save, async () => {
      error.clear();
      try {
        await saveLayout(order.filter((id) => shown.has(id)));
        dlg.close();
        if (onSaved) onSaved();
      } catch (err) {
        error.show(describeFailure(err));
      }
    }),
  );
  dlg.body.append(h("p", { class: "muted" }, "The message widget is always shown. Tick the widgets to show beside it, in this order."), list, error.el);
  dlg.footer.append(save);
  render();
}
