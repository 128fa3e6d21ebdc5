// Switching the console's view from a module that app.js itself imports, without importing app.js back:
// app.js registers its `show` here at start; widgets call `navigate`.

let handler = () => {};

export function onNavigate(show) {
  handler = show;
}

export function navigate(view) {
  handler(view);
}
