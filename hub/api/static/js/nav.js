// Switching the console's view from a module that app.js itself imports, without importing app.js back:
// app.js registers its `show` here at start; widgets call `navigate`.
//
// A page of one record has a hash route too, so that a link can open it and a reload stays on it:
// view "contact:12" is "#contact/12", "ticket:7" is "#ticket/7", "article:3" is "#article/3".

let handler = () => {};

export function onNavigate(show) {
  handler = show;
}

export function navigate(view) {
  handler(view);
}

const PAGES = ["contact", "ticket", "article"];

// the view a hash names ("#ticket/7" -> "ticket:7"), or null
export function viewFromHash(hash) {
  const found = /^#([a-z]+)\/([0-9]+)$/.exec(hash || "");
  return found && PAGES.includes(found[1]) ? `${found[1]}:${found[2]}` : null;
}

// the hash of a view that has one ("contact:12" -> "#contact/12"), or "" for the others
export function hashOf(view) {
  const [page, id] = String(view).split(":");
  return PAGES.includes(page) && /^[0-9]+$/.test(id || "") ? `#${page}/${id}` : "";
}
