// The Knowledge articles widget (side panel) and an article's full page.
//
// Agents search the articles of their queues, read one in the widget, go back to the list,
// open it full-page, and insert its link or a selected passage into the reply.
// The server sends each article as sanitised HTML; the console still never parses it into
// the page as it comes: it is read into an inert document and copied element by element
// through an allow-list (safeArticle), links forced to open in a new tab without a referrer.

import { get, describeFailure } from "./api.js";
import { h, clear, button, debounce, items, safeHref, dateTime } from "./util.js";
import { navigate } from "./nav.js";

const TAGS = new Set(["a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul"]);
const ATTRIBUTES = { a: ["href", "title"], img: ["src", "alt", "title"], th: ["align"], td: ["align"], ol: ["start"] };

/** The article's HTML as DOM nodes built through the allow-list (text stays text). */
export function safeArticle(html) {
  const inert = new DOMParser().parseFromString(String(html || ""), "text/html");
  const out = document.createDocumentFragment();
  const copy = (from, to) => {
    for (const node of from.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) {
        to.appendChild(document.createTextNode(node.textContent));
        continue;
      }
      if (node.nodeType !== Node.ELEMENT_NODE) continue;
      const tag = node.tagName.toLowerCase();
      if (!TAGS.has(tag)) {
        copy(node, to); // keep the words of anything unexpected, drop the element
        continue;
      }
      const el = document.createElement(tag);
      for (const name of ATTRIBUTES[tag] || []) {
        const value = node.getAttribute(name);
        if (value === null) continue;
        if (name === "href" || name === "src") {
          const safe = safeHref(value);
          if (safe) el.setAttribute(name, safe);
        } else el.setAttribute(name, value);
      }
      if (tag === "a") {
        el.setAttribute("target", "_blank");
        el.setAttribute("rel", "noopener noreferrer nofollow");
      }
      if (tag === "img") el.setAttribute("referrerpolicy", "no-referrer");
      copy(node, el);
      to.appendChild(el);
    }
  };
  copy(inert.body, out);
  return out;
}

/** The address of an article's full page in the console (what "Insert link" puts in the reply). */
export function articleLink(id) {
  return `${window.location.origin}/console/#article/${encodeURIComponent(id)}`;
}

function tagChips(article) {
  return (article.tags || []).length ? h("p", { class: "article-tags" }, article.tags.map((t) => h("span", { class: "chip" }, t))) : null;
}

/**
 * Mounts the widget at the end of `container` (the conversation's side panel) and returns its element.
 * `insertText(text)` puts text into the reply composer at the cursor.
 */
export function mountArticlesWidget(container, conv, { insertText } = {}) {
  const heading = h("h2", { id: `articles-h-${conv.id}` }, "Knowledge articles");
  const search = h("input", { type: "search", placeholder: "Search articles…", "aria-label": "Search articles", autocomplete: "off" });
  const body = h("div", { class: "articles-body", "aria-live": "polite" });
  const box = h("section", { class: "widget articles-widget", "aria-labelledby": heading.id, dataset: { widget: "articles" } }, heading, search, body);
  container.appendChild(box);
  let query = "";
  let request = 0;
  let typed = 0; // searches typed so far
  let openedAt = -1; // how many had been typed when the agent last opened an article

  async function showList() {
    const mine = ++request;
    clear(body, h("p", { class: "muted" }, "Loading…"));
    let found;
    try {
      found = items(await get(`articles?limit=10${query ? `&q=${encodeURIComponent(query)}` : ""}`));
    } catch (err) {
      if (mine === request) clear(body, h("p", { class: "error-text" }, describeFailure(err)));
      return;
    }
    if (mine !== request) return; // a newer search answered first
    if (!found.length) {
      clear(body, h("p", { class: "muted" }, query ? `No article matches “${query}”.` : "No articles for your queues yet."));
      return;
    }
    clear(
      body,
      h("ul", { class: "list compact article-list", "aria-label": "Articles", dataset: { query } },
        found.map((a) =>
          h("li", { class: "article-row", dataset: { article: a.id } },
            button(a.title, () => showArticle(a.id), { class: "link article-title", title: "Read in the widget" }),
            button("Open", () => navigate(`article:${a.id}`), { class: "quiet small", "aria-label": `Open ${a.title} full-page` }),
            a.snippet ? h("p", { class: "muted snippet" }, a.snippet) : null,
          ),
        ),
      ),
    );
  }

  async function showArticle(id) {
    request++;
    openedAt = typed; // a search still waiting to run must not take the article away
    let article;
    try {
      article = await get(`articles/${id}`);
    } catch (err) {
      clear(body, h("p", { class: "error-text" }, describeFailure(err)), button("Back", showList));
      return;
    }
    const content = h("div", { class: "article-content" }, safeArticle(article.html));
    const passage = () => {
      const selection = window.getSelection();
      if (!selection || selection.isCollapsed || !content.contains(selection.anchorNode)) return "";
      return selection.toString().trim();
    };
    let remembered = "";
    const passageButton = button("Insert passage", () => {
      const text = passage() || remembered;
      if (text && insertText) insertText(text);
    }, { disabled: true, title: "Select words in the article first" });
    const onSelection = () => {
      if (!content.isConnected) {
        document.removeEventListener("selectionchange", onSelection);
        return;
      }
      const text = passage();
      if (text) remembered = text;
      passageButton.disabled = !text && !remembered;
    };
    document.addEventListener("selectionchange", onSelection);
    clear(
      body,
      h("div", { class: "article-toolbar", role: "toolbar", "aria-label": "Article actions" },
        button("← Back", () => {
          document.removeEventListener("selectionchange", onSelection);
          showList();
        }, { class: "quiet" }),
        button("Open full page", () => navigate(`article:${article.id}`), { class: "quiet" }),
        button("Insert link", () => insertText && insertText(`${article.title}: ${articleLink(article.id)}`)),
        passageButton,
      ),
      h("h3", { class: "article-heading" }, article.title),
      tagChips(article),
      content,
    );
  }

  const runSearch = debounce((mark) => {
    if (openedAt >= mark) return;
    query = search.value.trim();
    showList();
  }, 250);
  search.addEventListener("input", () => runSearch(++typed));
  showList();
  return box;
}

/** The widget as the side panel's layout registers it. */
export const articlesWidget = { id: "articles", title: "Knowledge articles", mount: mountArticlesWidget };

/** An article on the whole screen; `onBack` returns to where the agent came from. */
export async function renderArticlePage(main, id, { onBack } = {}) {
  clear(main, h("p", { class: "muted" }, "Loading…"));
  let article;
  try {
    article = await get(`articles/${encodeURIComponent(id)}`);
  } catch (err) {
    clear(main, h("section", { class: "panel" }, h("p", { class: "error-text" }, describeFailure(err)), onBack ? button("Back", onBack) : null));
    return;
  }
  clear(
    main,
    h("article", { class: "panel article-page", "aria-labelledby": "article-page-h" },
      onBack ? button("← Back", onBack, { class: "quiet" }) : null,
      h("h1", { id: "article-page-h" }, article.title),
      tagChips(article),
      h("p", { class: "muted" }, `Version ${article.version} · updated ${dateTime(article.updated_at)}`),
      h("div", { class: "article-content" }, safeArticle(article.html)),
    ),
  );
}
