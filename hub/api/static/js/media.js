// Media in the console: how an attachment looks in the history (image with its thumbnail and a full view,
// a voice note's player, a video, a file card; pending and failed states with an admin's retry), live
// updates of an attachment when the hub fetched it, and uploads from the composer with a progress bar and
// errors in plain words. conversation.js calls these; the hub's side is hub/api/media.py.

import { post, ApiFailure, currentCsrf } from "./api.js";
import { h, safeHref, fileNameOf } from "./util.js";
import { isAdmin } from "./state.js";
import { modal } from "./ui.js";

// decimal units, as the hub's refusals count a provider's limits (docs/decisions/0049): a file the card calls
// "5.1 MB" is the file a refusal calls 5.1 MB
const KB = 1000;
const MB = 1000 * 1000;

export function humanSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < KB) return `${bytes} B`;
  if (bytes < MB) return `${(bytes / KB).toFixed(bytes < 10 * KB ? 1 : 0)} KB`;
  return `${(bytes / MB).toFixed(bytes < 10 * MB ? 1 : 0)} MB`;
}

// the hub's own media URLs are relative (/api/v1/media/ID); anything else must be http(s)
function mediaHref(url) {
  if (typeof url !== "string" || !url) return null;
  if (/^\/api\/v1\/media\/\d+(\?thumbnail=1)?$/.test(url)) return url;
  return safeHref(url);
}

function nameOf(a) {
  const fromUrl = a.url && !/^\/api\/v1\/media\//.test(a.url) ? fileNameOf(a.url) : null;
  return a.file_name || fromUrl || (a.kind ? `${a.kind} attachment` : "attachment");
}

// One attachment of a message, as the message JSON gives it
export function attachmentView(a) {
  const box = h("div", { class: `media media-${a.kind || "file"}`, "data-testid": "attachment", dataset: { state: a.state || "stored" } });
  if (a.id !== null && a.id !== undefined) box.dataset.attachmentId = String(a.id);
  if (a.state === "pending") {
    box.append(h("span", { class: "media-status", role: "status" }, `Receiving ${nameOf(a)}…`));
    return box;
  }
  if (a.state === "failed") {
    box.append(h("span", { class: "media-status media-failed", role: "note" }, `${nameOf(a)} could not be kept: ${a.error || "the provider did not hand it over"}`));
    if (isAdmin() && a.id !== null && a.id !== undefined) {
      const retry = h("button", { type: "button", class: "link" }, "Try again");
      retry.addEventListener("click", async () => {
        retry.disabled = true;
        try {
          const found = await post(`media/${a.id}/retry`, {});
          box.replaceWith(attachmentView(found));
        } catch (err) {
          retry.disabled = false;
          box.append(h("span", { class: "media-failed" }, ` ${err.message}`));
        }
      });
      box.append(" ", retry);
    }
    return box;
  }
  const href = mediaHref(a.url);
  if (!href) {
    box.append(h("span", { class: "attachment attachment-inert", "data-testid": "attachment-inert" }, `Attachment: ${nameOf(a)} (${a.kind || "file"})${a.url ? ` ${a.url}` : ""}`));
    return box;
  }
  if (a.kind === "image" || a.kind === "sticker") {
    const thumb = mediaHref(a.thumbnail_url) || href;
    const img = h("img", { src: thumb, alt: nameOf(a), loading: "lazy", "data-testid": "attachment-image" });
    if (a.width && a.height) img.title = `${a.width}×${a.height}`;
    const open = h("a", { href, target: "_blank", rel: "noopener noreferrer", class: "attachment", title: "Show the full image" }, img);
    open.addEventListener("click", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
      ev.preventDefault();
      fullView(a, href);
    });
    box.append(open);
  } else if (a.kind === "audio") {
    box.append(h("audio", { controls: true, preload: "metadata", src: href, "aria-label": nameOf(a) }));
  } else if (a.kind === "video") {
    box.append(h("video", { controls: true, preload: "metadata", src: href, "aria-label": nameOf(a) }));
  } else {
    box.append(
      h(
        "a",
        { href, class: "attachment file-card", target: "_blank", download: a.file_name || "", rel: "noopener noreferrer", "data-testid": "file-card" },
        h("span", { class: "file-name" }, h("span", { class: "sr-only" }, "Attachment: "), nameOf(a)),
        h("span", { class: "muted" }, [a.mime, humanSize(a.size)].filter(Boolean).join(" · ")),
      ),
    );
  }
  return box;
}

function fullView(a, href) {
  const dlg = modal(nameOf(a), { label: "image" });
  dlg.body.append(h("img", { src: href, alt: nameOf(a), class: "media-full" }));
  const facts = [a.width && a.height ? `${a.width}×${a.height}` : "", humanSize(a.size)].filter(Boolean).join(" · ");
  if (facts) dlg.body.append(h("p", { class: "muted" }, facts));
  dlg.footer.append(h("a", { href, class: "button", download: a.file_name || "" }, "Download"));
}

// message.attachment: the attachment changed (stored, failed, pending again): replace it where it is shown
export function applyAttachmentEvent(data) {
  const found = data?.attachment;
  if (!found || found.id === undefined) return false;
  let done = false;
  for (const el of document.querySelectorAll(`[data-attachment-id="${CSS.escape(String(found.id))}"]`)) {
    el.replaceWith(attachmentView(found));
    done = true;
  }
  return done;
}

// ------------------------------------------------------------------ uploads

// What went wrong, in words an agent understands
export function uploadProblem(file, status, error) {
  const code = error?.code;
  if (status === 413 || code === "file_too_large") return `${file.name} is too big: the hub takes files up to ${humanSize(error?.limit) || "its limit"}.`;
  if (code === "type_mismatch") return `${file.name} is not what its name says (${error?.sniffed || "another type"}); rename it or send the real file.`;
  if (code === "empty_file") return `${file.name} is empty.`;
  if (status === 0) return `${file.name} could not be sent: the hub cannot be reached.`;
  return `${file.name}: ${error?.message || "the upload failed"}`;
}

// POST /api/v1/uploads with progress; resolves to the upload's JSON, rejects with an ApiFailure whose
// message is in plain words
export function uploadFile(file, onProgress, csrfToken) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/uploads");
    xhr.withCredentials = true;
    xhr.setRequestHeader("Accept", "application/json");
    const token = csrfToken || currentCsrf();
    if (token) xhr.setRequestHeader("X-CSRF-Token", token);
    xhr.setRequestHeader("Idempotency-Key", crypto.randomUUID());
    xhr.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable && onProgress) onProgress(ev.loaded / ev.total);
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status === 201) return resolve(data);
      const error = data?.error || { message: xhr.statusText };
      reject(new ApiFailure(xhr.status, { ...error, message: uploadProblem(file, xhr.status, error) }));
    });
    xhr.addEventListener("error", () => reject(new ApiFailure(0, { code: "network", message: uploadProblem(file, 0, null) })));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

// A pending file in the composer: its name, a progress bar, and (once uploaded) its size
export function pendingView(item, onRemove) {
  const bar = h("progress", { max: 1, value: item.progress ?? 0, "aria-label": `Uploading ${item.file_name}` });
  const li = h("li", { class: "pending-file", "data-testid": "pending-file", dataset: { state: item.upload ? "ready" : "uploading" } }, h("span", {}, item.file_name), " ");
  if (item.upload) li.append(h("span", { class: "muted" }, `${item.kind} · ${humanSize(item.size)}`), " ");
  else li.append(bar, " ");
  const remove = h("button", { type: "button", class: "link", "aria-label": `Remove ${item.file_name}` }, "Remove");
  remove.addEventListener("click", onRemove);
  li.append(remove);
  item.bar = bar;
  return li;
}

export function kindOfUpload(mime) {
  if (!mime) return "file";
  if (mime.startsWith("image/")) return "image";
  if (mime.startsWith("video/")) return "video";
  if (mime.startsWith("audio/")) return "audio";
  return "file";
}
