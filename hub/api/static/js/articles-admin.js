// The knowledge article editor (admin): list and search, write in Markdown with a live preview
// rendered by the server (the same sanitiser as saved articles), tags, queues, and the version
// history (view an old version, load it back into the editor, save it as a new version).

import { get, post, put, del, toast, describeFailure, isMissingRoute } from "./api.js";
import { h, clear, button, field, dateTime, items, debounce } from "./util.js";
import { state, agentName } from "./state.js";
import { errorBox, busy } from "./ui.js";
import { safeArticle } from "./articles.js";

export async function renderArticlesAdmin(main) {
  const search = h("input", { type: "search", placeholder: "Search articles…", "aria-label": "Search articles" });
  const list = h("ul", { class: "list compact", "aria-label": "Articles" });
  const listBox = h("nav", { class: "template-list articles-list", "aria-label": "Knowledge articles" },
    h("h1", {}, "Articles"),
    button("New article", () => edit(null), { class: "primary" }),
    search,
    list,
  );
  const editorBox = h("section", { class: "template-editor article-editor", "aria-label": "Article editor" });
  clear(main, h("div", { class: "templates-screen" }, listBox, editorBox));

  async function loadList(selectId) {
    let found;
    try {
      const q = search.value.trim();
      found = items(await get(`articles?limit=100${q ? `&q=${encodeURIComponent(q)}` : ""}`));
    } catch (err) {
      clear(list, h("li", { class: "notice" }, isMissingRoute(err) ? "This hub does not serve the articles API yet." : describeFailure(err)));
      return;
    }
    clear(list, found.map((a) => h("li", {}, button(`${a.title} · v${a.version}`, () => edit(a.id), { class: "link", dataset: { article: a.id } }))));
    if (selectId !== undefined) edit(selectId);
  }

  async function edit(id) {
    let article = { title: "", body: "", tags: [], queues: [] };
    let versions = [];
    if (id !== null) {
      try {
        article = await get(`articles/${id}`);
        versions = items(await get(`articles/${id}/versions`));
      } catch (err) {
        clear(editorBox, h("p", { class: "error-text" }, describeFailure(err)));
        return;
      }
    }
    for (const b of list.querySelectorAll("[data-article]")) b.setAttribute("aria-current", String(String(b.dataset.article) === String(id)));
    renderEditor(article, versions, id);
  }

  function renderEditor(article, versions, id) {
    const title = h("input", { value: article.title, required: true, maxlength: 300 });
    const tags = h("input", { value: (article.tags || []).join(", "), placeholder: "billing, refunds" });
    const queueBoxes = state.queues.map((q) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", value: q.id, checked: (article.queues || []).includes(q.id) }), ` ${q.name || q.id}`),
    );
    const body = h("textarea", { rows: 16, class: "code", value: article.body, spellcheck: "true", "aria-label": "Body (Markdown)" });
    const preview = h("div", { class: "article-content article-preview", "aria-live": "polite", "data-testid": "article-preview" });
    const previewLabel = h("h3", {}, "Preview");
    const error = errorBox();
    const saveButton = h("button", { type: "button", class: "primary" }, id === null ? "Create" : "Save new version");
    const deleteButton = id === null ? null : h("button", { type: "button", class: "danger" }, "Delete");

    const refreshPreview = debounce(async () => {
      if (!body.value.trim()) {
        clear(preview, h("p", { class: "muted" }, "Nothing to preview."));
        return;
      }
      try {
        clear(preview, safeArticle((await post("articles/preview", { body: body.value })).html));
      } catch (err) {
        clear(preview, h("p", { class: "error-text" }, describeFailure(err)));
      }
    }, 300);
    body.addEventListener("input", refreshPreview);

    const draft = () => ({
      title: title.value.trim(),
      body: body.value,
      tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
      queues: queueBoxes.map((l) => l.querySelector("input")).filter((c) => c.checked).map((c) => c.value),
    });

    saveButton.addEventListener("click", () => busy(saveButton, async () => {
      error.clear();
      try {
        const saved = id === null ? await post("articles", draft()) : await put(`articles/${id}`, draft());
        toast(`Saved “${saved.title}” as version ${saved.version}.`);
        await loadList(saved.id);
      } catch (err) {
        error.show(describeFailure(err));
      }
    }));
    if (deleteButton) {
      deleteButton.addEventListener("click", () => busy(deleteButton, async () => {
        if (!confirm(`Delete the article “${article.title}” and its history?`)) return;
        try {
          await del(`articles/${id}`);
          toast("Article deleted.");
          await loadList();
          edit(null);
        } catch (err) {
          error.show(describeFailure(err));
        }
      }));
    }

    const history = versions.length
      ? h("section", { class: "versions", "aria-label": "Versions" },
          h("h3", {}, "Versions"),
          h("ol", { class: "list compact", reversed: true }, [...versions].reverse().map((v) =>
            h("li", { dataset: { version: v.version } },
              h("span", {}, `v${v.version} · ${dateTime(v.created_at)}${v.created_by ? ` · ${agentName(v.created_by)}` : ""}`),
              " ",
              button("View", () => {
                clear(previewLabel, `Version ${v.version}`);
                clear(preview, safeArticle(v.html));
              }, { class: "link small" }),
              " ",
              button("Load into editor", () => {
                title.value = v.title;
                body.value = v.body;
                tags.value = (v.tags || []).join(", ");
                for (const l of queueBoxes) l.querySelector("input").checked = (v.queues || []).includes(l.querySelector("input").value);
                clear(previewLabel, "Preview");
                refreshPreview();
                toast(`Version ${v.version} loaded: save to make it the current version.`);
              }, { class: "link small" }),
            ),
          )),
        )
      : null;

    clear(
      editorBox,
      h("h2", {}, id === null ? "New article" : `${article.title} · v${article.version}`),
      field("Title", title),
      field("Tags", tags, "Comma-separated."),
      h("fieldset", { class: "queues-pick" }, h("legend", {}, "Queues (none: every agent)"), queueBoxes),
      h("div", { class: "article-write" }, field("Body (Markdown)", body), h("div", {}, previewLabel, preview)),
      error.el,
      h("div", { class: "actions" }, saveButton, deleteButton),
      history,
    );
    refreshPreview();
  }

  search.addEventListener("input", debounce(() => loadList(), 250));
  await loadList();
  edit(null);
}
