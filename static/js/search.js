// Searching messages: the box in the top bar (/ or Ctrl+K to get there), the
// results beside the conversation grouped by room with the words found
// marked, and a click that opens the conversation at that message.
// Filters (in:#room, from:@person, before:/after: a date) are the server's.

import { api } from "./api.js";
import { $, h, safeHtml, userLabel } from "./dom.js";
import { clockTime, dayLabel, fullTime } from "./time.js";

const PAGE = 50;
const FILTER = /^(in|from|has|before|after):/i;

/** The words of a query that can be marked in a result (its filters and operators left out). */
export function searchWords(query) {
  return query
    .split(/\s+/)
    .filter((word) => word && !FILTER.test(word))
    .map((word) => word.replace(/^[-"]+|["]+$/g, ""))
    .filter((word) => word.length > 1 && word.toLowerCase() !== "or");
}

/** `text` as nodes, with each occurrence of `words` (any case, word starts) in a <mark>. */
export function marked(text, words) {
  if (!words.length) return [text];
  const escaped = words.map((word) => word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`(${escaped.join("|")})`, "gi");
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) nodes.push(text.slice(last, match.index));
    nodes.push(h("mark", { text: match[0] }));
    last = match.index + match[0].length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

export class SearchPanel {
  constructor(store, { onOpenPanel, onOpenResult }) {
    this.store = store;
    this.onOpenPanel = onOpenPanel;
    this.onOpenResult = onOpenResult;
    this.form = $("#search-form");
    this.input = $("#search-input");
    this.panel = $("#search-panel");
    this.results = $("#search-results");
    this.status = $("#search-status");
    this.more = $("#search-more");
    this.found = [];
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.search(this.input.value.trim());
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.input.value = "";
        this.close();
        this.input.blur();
      }
    });
    $("#search-close").addEventListener("click", () => this.close({ restoreFocus: true }));
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close({ restoreFocus: true });
    });
    this.more.addEventListener("click", () => this.search(this.query, { more: true }));
    document.addEventListener("keydown", (event) => {
      const typing = event.target.closest?.("input, textarea, select, [contenteditable]");
      const ctrlK = (event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k";
      if (ctrlK || (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey)) {
        event.preventDefault();
        this.input.focus();
        this.input.select();
      }
    });
  }

  close({ restoreFocus = false } = {}) {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    if (restoreFocus) this.input.focus();
  }

  async search(query, { more = false } = {}) {
    if (!query) return;
    this.onOpenPanel(this);
    this.panel.hidden = false;
    if (!more) {
      this.query = query;
      this.found = [];
      this.results.replaceChildren();
    }
    this.status.textContent = "Searching…";
    this.more.hidden = true;
    const before = more && this.found.length ? `&before=${this.found.at(-1).id}` : "";
    let page;
    try {
      page = await api.get(`search/messages/?q=${encodeURIComponent(query)}&limit=${PAGE}${before}`);
    } catch (error) {
      this.status.textContent = `Could not search: ${error.message}`;
      return;
    }
    if (this.query !== query) return;
    this.found = [...this.found, ...page.results];
    this.more.hidden = !page.has_more;
    const count = this.found.length;
    this.status.textContent = count
      ? `${count}${page.has_more ? "+" : ""} ${count === 1 ? "message" : "messages"} found for “${query}”.`
      : `Nothing found for “${query}”.`;
    this.render();
  }

  /** Results grouped by room, each room in the order of its newest result. */
  render() {
    const words = searchWords(this.query);
    const groups = new Map();
    for (const message of this.found) {
      if (!groups.has(message.room)) groups.set(message.room, []);
      groups.get(message.room).push(message);
    }
    const now = new Date();
    this.results.replaceChildren(
      ...[...groups].map(([roomId, messages]) => {
        const room = this.store.rooms.get(roomId);
        const label = room ? (room.kind === "channel" ? `#${room.name}` : this.store.roomLabel(room)) : "A room";
        const headingId = `search-room-${roomId}`;
        return h(
          "section",
          { class: "search-group", "aria-labelledby": headingId },
          h("h3", { id: headingId, text: label }),
          h(
            "ul",
            { class: "search-list" },
            messages.map((message) => {
              const created = new Date(message.created_at);
              const author = message.author.display_name || message.author.username;
              return h(
                "li",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    class: "search-result",
                    dataset: { id: message.id },
                    onclick: () => this.onOpenResult(message),
                  },
                  h(
                    "span",
                    { class: "search-meta" },
                    h("span", { class: "author", text: author, title: userLabel(message.author) }),
                    h("time", {
                      datetime: message.created_at,
                      title: fullTime(created),
                      text: `${dayLabel(created, now)} ${clockTime(created)}`,
                    }),
                    message.parent ? h("span", { class: "search-in-thread", text: "in a thread" }) : null,
                  ),
                  // The text as shown (Markdown rendered, then read back as plain text), words marked.
                  h("span", { class: "search-text" }, marked(safeHtml(message.html).textContent ?? "", words)),
                ),
              );
            }),
          ),
        );
      }),
    );
  }
}
