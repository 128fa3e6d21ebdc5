// Modal dialogs on the native <dialog> element: focus is trapped by the browser,
// Escape closes, and focus goes back where it was.

import { h, clear } from "./util.js";

export function modal(title, { wide = false, onClose, label } = {}) {
  const body = h("div", { class: "dialog-body" });
  const footer = h("div", { class: "dialog-actions" });
  const closeButton = h("button", { type: "button", class: "icon-button", "aria-label": "Close", title: "Close" }, "×");
  const heading = h("h2", { id: `dlg-${Math.random().toString(36).slice(2, 8)}` }, title);
  const dialog = h(
    "dialog",
    { class: wide ? "dialog wide" : "dialog", "aria-labelledby": heading.id, dataset: { dialog: label || title } },
    h("header", { class: "dialog-head" }, heading, closeButton),
    body,
    footer,
  );
  const previous = document.activeElement;
  const close = () => {
    if (dialog.open) dialog.close();
  };
  closeButton.addEventListener("click", close);
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (onClose) onClose();
    if (previous && previous.isConnected && typeof previous.focus === "function") previous.focus();
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  return { dialog, body, footer, close, setTitle: (t) => clear(heading, t) };
}

export function errorBox() {
  const el = h("p", { class: "error-text", role: "alert", hidden: true });
  return {
    el,
    show(text) {
      el.textContent = text;
      el.hidden = !text;
    },
    clear() {
      el.textContent = "";
      el.hidden = true;
    },
  };
}

// Runs an action, disabling the control meanwhile; the UI changes only from the server's answer.
export async function busy(control, fn) {
  const controls = Array.isArray(control) ? control : [control];
  for (const c of controls) if (c) c.disabled = true;
  try {
    return await fn();
  } finally {
    for (const c of controls) if (c) c.disabled = false;
  }
}

let audioContext = null;

export function beep() {
  try {
    audioContext = audioContext || new AudioContext();
    const osc = audioContext.createOscillator();
    const gain = audioContext.createGain();
    osc.type = "sine";
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, audioContext.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.2, audioContext.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, audioContext.currentTime + 0.35);
    osc.connect(gain).connect(audioContext.destination);
    osc.start();
    osc.stop(audioContext.currentTime + 0.4);
  } catch {
    // no audio device: the visual notification is enough
  }
}
