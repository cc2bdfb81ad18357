// Threads beside the conversation: the thread panel (a root, its replies as
// they arrive, and a composer of its own with "also send to the room"), the
// list of threads the user follows with their unread counts, and the room's
// pinned messages. Replies reach the page as `message.new` with `parent`;
// the store hands them here ("reply") instead of to the room's list.

import { ApiError, api } from "./api.js";
import { attachmentList, imageViewer } from "./attachments.js";
import { $, h, hueClass, initials, safeHtml, toast, userLabel } from "./dom.js";
import { clockTime, fullTime } from "./time.js";

const THREAD_PAGE = 200;
const THREAD_PAGES_MAX = 10;
const READ_DELAY_MS = 300;
const REFRESH_DELAY_MS = 400;

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** A message as the side panels show it: who, when, and what (no actions). */
export function compactMessage(store, message, { highlighted = false } = {}) {
  store.rememberPeople([message.author]);
  const author = message.author.display_name || message.author.username;
  const created = new Date(message.created_at);
  const body = h("div", { class: "message-body" });
  if (message.deleted) body.append(h("p", { class: "tombstone", text: "This message was deleted." }));
  else body.append(safeHtml(message.html));
  return h(
    "article",
    {
      class: `message compact${highlighted ? " highlighted" : ""}${message.deleted ? " deleted" : ""}`,
      dataset: { id: message.id },
    },
    h(
      "span",
      { class: `avatar ${hueClass(message.author.id)}`, "aria-hidden": "true" },
      initials(author),
    ),
    h(
      "div",
      { class: "message-main" },
      h(
        "header",
        { class: "message-meta" },
        h("span", { class: "author", text: author, title: userLabel(message.author) }),
        h("time", { datetime: message.created_at, title: fullTime(created), text: clockTime(created) }),
      ),
      body,
      attachmentList(message, { onOpenImage: (files, index) => imageViewer().open(files, index) }),
    ),
  );
}

/** "3 replies", with the faces of the last repliers and when the last one came: shown under a root. */
export function threadSummary(store, message, onOpen) {
  if (!message.reply_count) return null;
  const count = message.reply_count === 1 ? "1 reply" : `${message.reply_count} replies`;
  const last = message.last_reply_at ? new Date(message.last_reply_at) : null;
  const faces = (message.last_repliers ?? []).map((id) => {
    const person = store.people.get(id);
    const name = person ? person.display_name || person.username : "?";
    return h("span", { class: `avatar face ${hueClass(id)}`, "aria-hidden": "true", title: name }, initials(name));
  });
  return h(
    "button",
    {
      type: "button",
      class: "thread-summary",
      "aria-label": `${count}${last ? `, last at ${clockTime(last)}` : ""}: open the thread`,
      onclick: () => onOpen(message.id),
    },
    h("span", { class: "faces" }, faces),
    h("span", { class: "thread-summary-count", text: count }),
    last ? h("time", { datetime: message.last_reply_at, title: fullTime(last), text: `Last reply ${clockTime(last)}` }) : null,
  );
}

export class ThreadPanel {
  constructor(store, { onOpenPanel, onClosed }) {
    this.store = store;
    this.onOpenPanel = onOpenPanel;
    this.onClosed = onClosed;
    this.panel = $("#thread-panel");
    this.rootBox = $("#thread-root");
    this.countLine = $("#thread-count");
    this.list = $("#thread-replies");
    this.scroller = $("#thread-scroll");
    this.form = $("#thread-composer");
    this.input = $("#thread-input");
    this.broadcast = $("#thread-broadcast");
    this.error = $("#thread-error");
    this.followButton = $("#thread-follow");
    this.rootId = null;
    this.root = null;
    this.replies = new Map();
    this.highlightId = null;
    this.readSent = 0;

    store.addEventListener("reply", (event) => this.onReply(event.detail.message));
    store.addEventListener("messages", (event) => {
      const message = event.detail.message;
      if (message && message.id === this.rootId) {
        this.root = { ...this.root, ...message };
        this.renderRoot();
      }
    });
    $("#thread-close").addEventListener("click", () => this.close({ restoreFocus: true }));
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close({ restoreFocus: true });
    });
    this.followButton.addEventListener("click", () => this.toggleFollow());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.scroller.addEventListener("scroll", () => this.markRead(), { passive: true });
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  /** Open the thread of `rootId` (a reply's id opens its root's thread); highlight `highlightId` if given. */
  async open(rootId, { highlightId = null, focus = true } = {}) {
    this.opener = document.activeElement;
    this.onOpenPanel(this);
    this.panel.hidden = false;
    this.rootId = rootId;
    this.highlightId = highlightId;
    this.replies = new Map();
    this.root = null;
    this.rootBox.replaceChildren();
    this.list.replaceChildren();
    this.countLine.textContent = "Loading the thread…";
    this.error.textContent = "";
    try {
      const thread = await api.get(`messages/${rootId}/thread/?limit=${THREAD_PAGE}`);
      // A long thread comes in pages, oldest first: read on to the newest, where live replies join.
      let page = thread;
      for (let pages = 1; page.has_more && page.results.length && pages < THREAD_PAGES_MAX; pages += 1) {
        const after = page.results.at(-1).id;
        page = await api.get(`messages/${thread.root.id}/thread/?after=${after}&limit=${THREAD_PAGE}`);
        thread.results.push(...page.results);
      }
      if (this.rootId !== rootId) return;
      this.rootId = thread.root.id;
      this.root = thread.root;
      for (const reply of thread.results) this.replies.set(reply.id, reply);
      this.following = thread.following;
      this.readSent = thread.last_read_id;
      this.render();
      if (focus) this.input.focus();
      this.markRead();
    } catch (error) {
      this.countLine.textContent = `Could not load the thread: ${error.message}`;
    }
  }

  close({ restoreFocus = false } = {}) {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    this.rootId = null;
    this.onClosed?.();
    if (restoreFocus && this.opener?.isConnected) this.opener.focus();
  }

  render() {
    this.renderRoot();
    const replies = [...this.replies.values()].sort((a, b) => a.id - b.id);
    this.list.replaceChildren(
      ...replies.map((reply) => compactMessage(this.store, reply, { highlighted: reply.id === this.highlightId })),
    );
    const room = this.store.rooms.get(this.root.room);
    $("#thread-broadcast-label").textContent =
      room?.kind === "channel" ? `Also send to #${room.name}` : "Also send to the conversation";
    this.followButton.textContent = this.following ? "Following" : "Follow";
    this.followButton.setAttribute("aria-pressed", String(Boolean(this.following)));
    const highlighted = this.highlightId && this.list.querySelector(`article[data-id="${this.highlightId}"]`);
    if (highlighted) highlighted.scrollIntoView({ block: "center" });
    else this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  renderRoot() {
    if (!this.root) return;
    this.rootBox.replaceChildren(compactMessage(this.store, this.root));
    const count = this.replies.size;
    this.countLine.textContent = count === 1 ? "1 reply" : `${count} replies`;
  }

  onReply(message) {
    if (this.rootId === null || message.parent !== this.rootId) return;
    const stick = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 80;
    const isNew = !this.replies.has(message.id);
    this.replies.set(message.id, message);
    const element = compactMessage(this.store, message);
    const existing = this.list.querySelector(`article[data-id="${message.id}"]`);
    if (existing) existing.replaceWith(element);
    else this.list.append(element);
    this.renderRoot();
    if (isNew && (stick || message.author.id === this.store.me.id)) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.markRead();
  }

  /** The reader sees the newest reply: move their read position in this thread (it only moves forward). */
  markRead() {
    if (this.rootId === null || document.visibilityState !== "visible") return;
    const newest = Math.max(0, ...this.replies.keys());
    if (!newest || newest <= this.readSent) return;
    this.readSent = newest;
    const rootId = this.rootId;
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => {
      api.post(`messages/${rootId}/thread/read/`, { message_id: newest }).catch(() => {
        // The next reply seen moves it again.
      });
    }, READ_DELAY_MS);
  }

  async toggleFollow() {
    const follow = !this.following;
    try {
      if (follow) await api.put(`messages/${this.rootId}/follow/`);
      else await api.delete(`messages/${this.rootId}/follow/`);
      this.following = follow;
      this.followButton.textContent = follow ? "Following" : "Follow";
      this.followButton.setAttribute("aria-pressed", String(follow));
    } catch (error) {
      toast(`Could not change following: ${error.message}`);
    }
  }

  async send() {
    const body = this.input.value.trim();
    if (!body || !this.root) return;
    const button = $("#thread-send");
    button.disabled = true;
    this.error.textContent = "";
    try {
      const reply = await api.post(`rooms/${this.root.room}/messages/`, {
        body,
        client_id: newClientId(),
        parent: this.rootId,
        broadcast: this.broadcast.checked,
      });
      this.input.value = "";
      this.broadcast.checked = false;
      // Replying follows the thread (the server did it in the same transaction).
      this.following = true;
      this.followButton.textContent = "Following";
      this.followButton.setAttribute("aria-pressed", "true");
      this.store.upsertMessage(reply);
    } catch (error) {
      this.error.textContent = error instanceof ApiError ? (error.fields.body ?? error.message) : String(error);
    } finally {
      button.disabled = false;
      this.input.focus();
    }
  }
}

/** The threads the user follows, latest reply first, with unread counts; and the total on the sidebar button. */
export class ThreadsView {
  constructor(store, { onOpenPanel, onOpenThread }) {
    this.store = store;
    this.onOpenPanel = onOpenPanel;
    this.onOpenThread = onOpenThread;
    this.panel = $("#threads-panel");
    this.button = $("#threads-button");
    this.badge = $("#threads-badge");
    this.list = $("#thread-list");
    this.button.addEventListener("click", () => (this.panel.hidden ? this.open() : this.close()));
    $("#threads-close").addEventListener("click", () => this.close({ restoreFocus: true }));
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close({ restoreFocus: true });
    });
  }

  async open() {
    this.onOpenPanel(this);
    this.panel.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    await this.refresh();
    this.list.querySelector("button")?.focus();
  }

  close({ restoreFocus = false } = {}) {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    if (restoreFocus) this.button.focus();
  }

  /** Refetch soon (replies and read positions change the counts); bursts make one request. */
  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), REFRESH_DELAY_MS);
  }

  async refresh() {
    let page;
    try {
      page = await api.get("threads/?limit=50");
    } catch {
      return;
    }
    const unread = page.results.reduce((total, thread) => total + thread.unread_count, 0);
    this.badge.hidden = unread === 0;
    this.badge.textContent = String(unread);
    this.button.setAttribute("aria-label", unread ? `Threads, ${unread} unread` : "Threads");
    $("#threads-empty").hidden = page.results.length > 0;
    this.list.replaceChildren(
      ...page.results.map((thread) => {
        const room = this.store.rooms.get(thread.root.room);
        const where = room ? (room.kind === "channel" ? `#${room.name}` : this.store.roomLabel(room)) : "";
        const author = thread.root.author.display_name || thread.root.author.username;
        const text = thread.root.deleted ? "(deleted message)" : (safeHtml(thread.root.html).textContent ?? "");
        return h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: `thread-item${thread.unread_count ? " unread" : ""}`,
              onclick: () => this.onOpenThread(thread.root),
            },
            h("span", { class: "thread-where", text: `${where} · ${author}` }),
            h("span", { class: "thread-text", text: text.slice(0, 140) }),
            h("span", {
              class: "thread-meta",
              text: `${thread.root.reply_count} ${thread.root.reply_count === 1 ? "reply" : "replies"}${
                thread.unread_count ? ` · ${thread.unread_count} unread` : ""
              }`,
            }),
          ),
        );
      }),
    );
  }
}

/** The open room's pinned messages, newest pin first. */
export class PinsPanel {
  constructor(store, { onOpenPanel, onJump }) {
    this.store = store;
    this.onOpenPanel = onOpenPanel;
    this.onJump = onJump;
    this.panel = $("#pins-panel");
    this.button = $("#pins-button");
    this.list = $("#pin-list");
    this.button.addEventListener("click", () => (this.panel.hidden ? this.open() : this.close()));
    $("#pins-close").addEventListener("click", () => this.close({ restoreFocus: true }));
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close({ restoreFocus: true });
    });
    store.addEventListener("messages", (event) => {
      if (!this.panel.hidden && event.detail.roomId === this.roomId) this.refreshSoon();
    });
  }

  async open() {
    this.onOpenPanel(this);
    this.panel.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    await this.show(this.store.activeRoomId);
  }

  close({ restoreFocus = false } = {}) {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    if (restoreFocus) this.button.focus();
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.show(this.roomId), REFRESH_DELAY_MS);
  }

  /** Follow the open room while the panel is open. */
  async show(roomId) {
    this.roomId = roomId;
    if (this.panel.hidden || roomId === null) return;
    let pinned;
    try {
      pinned = await api.get(`rooms/${roomId}/pins/`);
    } catch (error) {
      toast(`Could not load the pinned messages: ${error.message}`);
      return;
    }
    if (this.roomId !== roomId) return;
    $("#pins-empty").hidden = pinned.length > 0;
    this.list.replaceChildren(
      ...pinned.map((message) =>
        h(
          "li",
          {},
          compactMessage(this.store, message),
          h("button", {
            type: "button",
            class: "quiet-button",
            text: "Jump to message",
            "aria-label": `Jump to the message from ${message.author.display_name || message.author.username}`,
            onclick: () => this.onJump(message),
          }),
        ),
      ),
    );
  }
}
