// The open room's messages: history that grows upwards as you scroll, day
// separators, a "New messages" line at the read position, edits in place,
// deletes, reactions, and the messages still being sent (with Retry).

import { ApiError, api } from "./api.js";
import { attachmentList, formatSize, imageViewer } from "./attachments.js";
import { $, h, hueClass, initials, mentionsUser, safeHtml, toast, userLabel } from "./dom.js";
import { clockTime, dayKey, dayLabel, fullTime } from "./time.js";
import { threadSummary } from "./threads.js";

const PAGE = 50;
// The server's largest page, and how many of them opening a room may read to reach the read marker.
const PAGE_MAX = 200;
const UNREAD_PAGES_MAX = 5;
const LOAD_OLDER_WITHIN_PX = 300;
const AT_BOTTOM_WITHIN_PX = 80;
// Messages by one person this close together share one header.
const GROUP_WITHIN_MS = 5 * 60 * 1000;

export class Timeline {
  constructor(store, { confirm, onSeen, onRetry, askPresence, maxLength, socketLive, onOpenThread }) {
    this.store = store;
    this.onOpenThread = onOpenThread;
    this.highlightId = null; // a message opened from a link or search result
    this.confirm = confirm;
    this.onSeen = onSeen;
    this.onRetry = onRetry;
    this.askPresence = askPresence;
    this.maxLength = maxLength;
    this.socketLive = socketLive;
    this.scroller = $("#messages");
    this.list = $("#message-list");
    this.pendingList = $("#pending-list");
    this.status = $("#history-status");
    this.picker = $("#reaction-picker");
    this.viewer = imageViewer();
    this.roomId = null;
    this.dividerBefore = null; // id of the first unread message when the room was opened
    this.editing = null; // {id, element}
    this.pickerFor = null;

    store.addEventListener("messages", (event) => this.onMessages(event.detail));
    store.addEventListener("pending", (event) => {
      if (event.detail.roomId === this.roomId) this.renderPending();
    });
    store.addEventListener("upload", (event) => {
      if (event.detail.roomId === this.roomId) this.showUploadProgress(event.detail);
    });
    store.addEventListener("presence", () => this.refreshPresence());
    // Touch screens cannot hover: a tap on a message shows its actions.
    this.list.addEventListener("click", (event) => {
      if (!window.matchMedia("(hover: none)").matches || event.target.closest("button, a, form")) return;
      const article = event.target.closest("article");
      for (const other of this.list.querySelectorAll(".show-actions")) {
        if (other !== article) other.classList.remove("show-actions");
      }
      article?.classList.toggle("show-actions");
    });
    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    this.picker.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-emoji]");
      if (button && this.pickerFor) this.toggleReaction(this.pickerFor, button.dataset.emoji, true);
      this.closePicker();
    });
    this.picker.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.closePicker({ restoreFocus: true });
      }
    });
    document.addEventListener("click", (event) => {
      if (!this.picker.hidden && !this.picker.contains(event.target) && !event.target.closest(".react-button")) {
        this.closePicker();
      }
    });
  }

  // --- Opening a room -------------------------------------------------------------------

  /** Show a room; load its newest messages if they are not loaded yet. */
  async show(roomId) {
    this.roomId = roomId;
    this.highlightId = null;
    this.editing = null;
    this.closePicker();
    const room = this.store.rooms.get(roomId);
    this.dividerBefore = null;
    this.firstUnreadAfter = room && room.unread_count > 0 ? room.last_read_message_id : null;
    const history = this.store.history(roomId);
    this.list.replaceChildren();
    this.renderPending();
    if (history.loaded) {
      this.renderAll({ scrollToUnread: true });
      this.checkSeen();
      return;
    }
    await this.loadNewest(roomId, room);
  }

  async loadNewest(roomId, room) {
    const history = this.store.history(roomId);
    this.setStatus("Loading messages…");
    // Enough to reach the read marker, so the "New messages" line can show where it belongs.
    const limit = Math.min(PAGE_MAX, Math.max(PAGE, (room?.unread_count ?? 0) + 10));
    const marker = room?.unread_count > 0 ? room.last_read_message_id : null;
    history.loading = true;
    try {
      const page = await api.get(`rooms/${roomId}/messages/?limit=${limit}`);
      let messages = page.results;
      let hasMore = page.has_more;
      // A backlog longer than a page: go back page by page to the marker, within reason.
      // (Beyond that the line tops what is loaded: everything below it is unread.)
      let pages = 1;
      while (marker !== null && hasMore && messages[0]?.id > marker && pages < UNREAD_PAGES_MAX) {
        const older = await api.get(`rooms/${roomId}/messages/?before=${messages[0].id}&limit=${PAGE_MAX}`);
        messages = [...older.results, ...messages];
        hasMore = older.has_more;
        pages += 1;
      }
      this.store.setHistory(roomId, messages, hasMore);
    } catch (error) {
      if (this.roomId === roomId) this.setStatus(`Could not load messages: ${error.message}`);
    } finally {
      history.loading = false;
    }
  }

  /** Show a room at one message, highlighted: from a search result, a pin or a link (`?around=`). */
  async showAround(roomId, messageId) {
    this.roomId = roomId;
    this.editing = null;
    this.closePicker();
    this.dividerBefore = null;
    this.firstUnreadAfter = null;
    this.highlightId = messageId;
    this.list.replaceChildren();
    this.renderPending();
    const known = this.store.histories.get(roomId);
    if (known?.loaded && known.byId.has(messageId)) {
      this.renderAll({ scrollToUnread: true });
      return;
    }
    this.store.histories.delete(roomId);
    const history = this.store.history(roomId);
    history.loading = true;
    this.setStatus("Loading messages…");
    try {
      const page = await api.get(`rooms/${roomId}/messages/?around=${messageId}&limit=${PAGE}`);
      let messages = page.results;
      let hasNewer = page.has_newer;
      // The page history grows from must reach the newest message, where live ones arrive.
      for (let pages = 0; hasNewer && pages < UNREAD_PAGES_MAX * 2; pages += 1) {
        const newer = await api.get(`rooms/${roomId}/messages/?after=${messages.at(-1).id}&limit=${PAGE_MAX}`);
        messages = [...messages, ...newer.results];
        hasNewer = newer.has_more;
      }
      // A reply outside the room's history is shown in its thread instead (the app opens it).
      if (!messages.some((message) => message.id === messageId)) this.highlightId = null;
      this.store.setHistory(roomId, messages, page.has_more);
    } catch (error) {
      if (this.roomId === roomId) this.setStatus(`Could not load messages: ${error.message}`);
    } finally {
      history.loading = false;
    }
  }

  /** Scroll to the highlighted message and mark it, for the reader's eye and for assistive technology. */
  showHighlight() {
    const article = this.list.querySelector(`article[data-id="${this.highlightId}"]`);
    if (!article) return false;
    for (const other of this.list.querySelectorAll("article.highlighted")) other.classList.remove("highlighted");
    article.classList.add("highlighted");
    article.setAttribute("aria-current", "true");
    article.scrollIntoView({ block: "center" });
    return true;
  }

  /** Reload the open room's newest page (after a resync), keeping nothing stale. */
  async reload() {
    if (this.roomId === null) return;
    this.store.histories.delete(this.roomId);
    await this.loadNewest(this.roomId, this.store.rooms.get(this.roomId));
  }

  async loadOlder() {
    const roomId = this.roomId;
    const history = this.store.history(roomId);
    if (!history.loaded || !history.hasMore || history.loading || !history.messages.length) return;
    history.loading = true;
    this.setStatus("Loading older messages…");
    try {
      const page = await api.get(`rooms/${roomId}/messages/?before=${history.messages[0].id}&limit=${PAGE}`);
      if (this.roomId === roomId) this.store.prependHistory(roomId, page.results, page.has_more);
    } catch (error) {
      if (this.roomId === roomId) this.setStatus(`Could not load older messages: ${error.message}`);
    } finally {
      history.loading = false;
    }
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  beginningText() {
    const room = this.store.rooms.get(this.roomId);
    if (!room) return "";
    return room.kind === "channel"
      ? `This is the very beginning of #${room.name}.`
      : `This is the beginning of your conversation with ${this.store.roomLabel(room)}.`;
  }

  updateStatus() {
    const history = this.store.history(this.roomId);
    if (!history.loaded) return;
    if (history.hasMore) this.setStatus("");
    else this.setStatus(this.beginningText());
  }

  // --- Store events -------------------------------------------------------------------------

  onMessages({ roomId, op, message, isNew, messages }) {
    if (roomId !== this.roomId) return;
    if (op === "reset") {
      this.renderAll({ scrollToUnread: true });
      this.checkSeen();
    } else if (op === "prepend") {
      const before = this.scroller.scrollHeight - this.scroller.scrollTop;
      const first = this.list.firstElementChild;
      for (const older of messages) this.list.insertBefore(this.messageElement(older), first);
      this.decorate();
      this.updateStatus();
      // Keep what the reader was looking at in place.
      this.scroller.scrollTop = this.scroller.scrollHeight - before;
    } else if (op === "renamed") {
      // The author's new name: redraw their messages where they stand, keeping the scroll.
      for (const renamed of messages) this.place(renamed, false);
      this.decorate();
    } else if (op === "upsert") {
      const stick = this.atBottom() || message.author.id === this.store.me.id;
      this.place(message, isNew);
      this.decorate();
      if (isNew && stick) this.scrollToBottom();
      this.checkSeen();
    }
  }

  renderAll({ scrollToUnread }) {
    const history = this.store.history(this.roomId);
    if (this.firstUnreadAfter !== null && this.dividerBefore === null) {
      const first = history.messages.find(
        (message) => message.id > this.firstUnreadAfter && message.author.id !== this.store.me.id,
      );
      this.dividerBefore = first ? first.id : null;
    }
    // Names first: a root's thread summary names repliers whose messages come after it.
    this.store.rememberPeople(history.messages.map((message) => message.author));
    this.list.replaceChildren(...history.messages.map((message) => this.messageElement(message)));
    this.decorate();
    this.updateStatus();
    this.askPresence(history.messages.map((message) => message.author.id));
    if (!scrollToUnread) return;
    if (this.highlightId !== null && this.showHighlight()) return;
    const divider = this.list.querySelector(".new-divider");
    if (divider) {
      this.scroller.scrollTop = divider.offsetTop - 16;
    } else {
      this.scrollToBottom();
    }
    // A first page shorter than the screen: fetch more so there is something to scroll.
    if (this.scroller.scrollHeight <= this.scroller.clientHeight && history.hasMore) this.loadOlder();
  }

  /** Put one message's element where its id belongs, replacing an older rendering. */
  place(message, isNew) {
    const existing = this.list.querySelector(`article[data-id="${message.id}"]`);
    if (existing) {
      if (this.editing?.id === message.id) return; // redrawn when the edit ends
      existing.replaceWith(this.messageElement(message));
      return;
    }
    const element = this.messageElement(message);
    const after = [...this.list.querySelectorAll("article[data-id]")].find(
      (article) => Number(article.dataset.id) > message.id,
    );
    if (after) this.list.insertBefore(element, after);
    else this.list.append(element);
    if (isNew) this.askPresence([message.author.id]);
  }

  /** Redraw day separators, the "New messages" line and header grouping. */
  decorate() {
    for (const separator of this.list.querySelectorAll(".day-separator, .new-divider")) separator.remove();
    let previous = null;
    const now = new Date();
    for (const article of [...this.list.querySelectorAll("article[data-id]")]) {
      const created = new Date(Number(article.dataset.created));
      let grouped = previous !== null;
      if (!previous || dayKey(previous.created) !== dayKey(created)) {
        article.before(
          h("div", { class: "day-separator", role: "separator" }, h("span", { text: dayLabel(created, now) })),
        );
        grouped = false;
      }
      if (Number(article.dataset.id) === this.dividerBefore) {
        article.before(h("div", { class: "new-divider", role: "separator" }, h("span", { text: "New messages" })));
        grouped = false;
      }
      grouped =
        grouped &&
        previous.author === article.dataset.authorId &&
        !previous.deleted &&
        article.dataset.deleted !== "true" &&
        created - previous.created < GROUP_WITHIN_MS;
      article.classList.toggle("grouped", grouped);
      previous = {
        author: article.dataset.authorId,
        created,
        deleted: article.dataset.deleted === "true",
      };
    }
  }

  // --- Scrolling and the read position -----------------------------------------------------

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < AT_BOTTOM_WITHIN_PX;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  onScroll() {
    if (this.scroller.scrollTop < LOAD_OLDER_WITHIN_PX) this.loadOlder();
    this.checkSeen();
  }

  /** Tell the app the reader has seen the newest message, when they have. */
  checkSeen() {
    if (this.roomId === null || document.visibilityState !== "visible" || !this.atBottom()) return;
    const history = this.store.histories.get(this.roomId);
    const newest = history?.messages.at(-1);
    if (newest) this.onSeen(this.roomId, newest.id);
  }

  // --- Message elements ----------------------------------------------------------------------

  name(user) {
    this.store.rememberPeople([user]);
    return user.display_name || user.username;
  }

  messageElement(message) {
    const me = this.store.me;
    const mine = message.author.id === me.id;
    const created = new Date(message.created_at);
    const room = this.store.rooms.get(message.room);
    const canModerate = room && ["owner", "admin"].includes(room.my_role) && room.kind === "channel";
    // Pins: a channel's owners and admins; anyone in a direct conversation.
    const canPin = room && (canModerate || (room.kind === "direct" && room.my_role));
    const threadRoot = message.parent ?? message.id;
    const author = this.name(message.author);
    const classes = ["message"];
    if (mine) classes.push("mine");
    if (message.deleted) classes.push("deleted");
    const mentionsMe = mentionsUser(message, me.id);
    if (mentionsMe && !mine) classes.push("mentions-me");

    const body = h("div", { class: "message-body" });
    if (message.deleted) {
      body.append(h("p", { class: "tombstone", text: "This message was deleted." }));
    } else {
      body.append(safeHtml(message.html));
      // A chip shows the name as typed; say whose account it is.
      for (const mention of body.querySelectorAll(".mention[data-user-id]")) {
        const person = this.store.people.get(Number(mention.dataset.userId));
        if (person) mention.title = userLabel(person);
      }
      if (mentionsMe) {
        for (const mention of body.querySelectorAll(`.mention[data-user-id="${me.id}"]`)) {
          mention.classList.add("mention-me");
        }
      }
      if (message.edited_at) {
        const edited = h("span", {
          class: "edited",
          title: `Edited ${fullTime(new Date(message.edited_at))}`,
          text: "(edited)",
        });
        const last = body.lastElementChild;
        if (last && last.tagName === "P") last.append(" ", edited);
        else body.append(edited);
      }
    }

    const actions = message.deleted
      ? null
      : h(
          "div",
          { class: "message-actions", role: "group", "aria-label": `Actions for the message from ${author}` },
          h(
            "button",
            {
              type: "button",
              class: "react-button",
              "aria-label": "Add reaction",
              title: "Add reaction",
              onclick: (event) => this.openPicker(message.id, event.currentTarget),
            },
            "☺+",
          ),
          h("button", { type: "button", text: "Reply in thread", onclick: () => this.onOpenThread(threadRoot) }),
          h("button", { type: "button", text: "Copy link", onclick: () => this.copyLink(message) }),
          canPin
            ? h("button", {
                type: "button",
                text: message.pinned ? "Unpin" : "Pin",
                onclick: () => this.setPinned(message.id, !message.pinned),
              })
            : null,
          mine
            ? h("button", { type: "button", text: "Edit", onclick: () => this.startEdit(message.id) })
            : null,
          mine || canModerate
            ? h("button", { type: "button", text: "Delete", onclick: () => this.deleteMessage(message.id) })
            : null,
          mine
            ? null
            : h("button", { type: "button", text: "Report", onclick: () => this.reportMessage(message.id, author) }),
        );

    return h(
      "article",
      {
        class: classes.join(" "),
        dataset: {
          id: message.id,
          authorId: message.author.id,
          created: created.getTime(),
          deleted: message.deleted ? "true" : "false",
        },
      },
      this.avatar(message.author),
      h(
        "div",
        { class: "message-main" },
        h(
          "header",
          { class: "message-meta" },
          h("span", { class: "author", text: author, title: userLabel(message.author) }),
          // A display name is anyone's to choose: the username says who it really is.
          author !== message.author.username
            ? h("span", { class: "author-username", text: `@${message.author.username}` })
            : null,
          h("time", { datetime: message.created_at, title: fullTime(created), text: clockTime(created) }),
          message.pinned ? h("span", { class: "pinned-note", text: "Pinned" }) : null,
          message.parent
            ? h("button", {
                type: "button",
                class: "link-button in-thread",
                text: "replied in a thread",
                onclick: () => this.onOpenThread(message.parent, message.id),
              })
            : null,
        ),
        body,
        attachmentList(message, { onOpenImage: (files, index) => this.viewer.open(files, index) }),
        this.reactionList(message),
        message.parent ? null : threadSummary(this.store, message, (rootId) => this.onOpenThread(rootId)),
      ),
      actions,
    );
  }

  avatar(user) {
    const online = this.store.online.has(user.id);
    return h(
      "span",
      {
        class: `avatar ${hueClass(user.id)}${online ? " online" : ""}`,
        "aria-hidden": "true",
        dataset: { presenceUser: user.id },
      },
      initials(user.display_name || user.username),
    );
  }

  reactionList(message) {
    if (message.deleted || !message.reactions?.length) return null;
    const me = this.store.me.id;
    return h(
      "ul",
      { class: "reactions", "aria-label": "Reactions" },
      message.reactions.map((reaction) => {
        const mine = reaction.users.includes(me);
        const who = reaction.users.map((id) => {
          const person = this.store.people.get(id);
          return id === me ? "you" : person ? person.display_name || person.username : "someone";
        });
        return h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: `reaction${mine ? " mine" : ""}`,
              "aria-pressed": mine ? "true" : "false",
              title: `${reaction.emoji} by ${who.join(", ")}`,
              onclick: () => this.toggleReaction(message.id, reaction.emoji, !mine),
            },
            `${reaction.emoji} ${reaction.count}`,
          ),
        );
      }),
    );
  }

  refreshPresence() {
    for (const avatar of document.querySelectorAll(".message .avatar[data-presence-user]")) {
      avatar.classList.toggle("online", this.store.online.has(Number(avatar.dataset.presenceUser)));
    }
  }

  // --- Messages being sent ----------------------------------------------------------------------

  renderPending() {
    const items = [...(this.store.pending.get(this.roomId)?.values() ?? [])];
    const stick = this.atBottom();
    this.pendingList.replaceChildren(...items.map((item) => this.pendingElement(item)));
    if (stick || items.some((item) => item.state !== "failed")) this.scrollToBottom();
  }

  pendingElement(item) {
    const me = this.store.me;
    const failed = item.state === "failed";
    return h(
      "article",
      { class: `message mine pending${failed ? " failed" : ""}`, dataset: { clientId: item.clientId } },
      this.avatar(me),
      h(
        "div",
        { class: "message-main" },
        h(
          "header",
          { class: "message-meta" },
          h("span", { class: "author", text: me.display_name || me.username }),
          h("time", {
            datetime: item.createdAt.toISOString(),
            title: fullTime(item.createdAt),
            text: clockTime(item.createdAt),
          }),
        ),
        item.body ? h("div", { class: "message-body pending-body", text: item.body }) : null,
        item.files.length
          ? h(
              "ul",
              { class: "pending-files", "aria-label": "Files" },
              item.files.map((file) =>
                h(
                  "li",
                  { dataset: { uploadKey: file.key } },
                  `${file.file.name} (${formatSize(file.file.size)}) `,
                  file.state === "uploading"
                    ? h("progress", {
                        max: file.total || 1,
                        value: file.loaded,
                        "aria-label": `Uploading ${file.file.name}`,
                      })
                    : null,
                ),
              ),
            )
          : null,
        failed
          ? h(
              "p",
              { class: "send-status", role: "alert" },
              h("span", { text: `Not sent: ${item.error}` }),
              item.retryable
                ? h("button", { type: "button", text: "Retry", onclick: () => this.onRetry(item) })
                : null,
              h("button", {
                type: "button",
                text: "Discard",
                onclick: () => {
                  for (const file of item.files) file.cancel?.();
                  this.store.removePending(item.roomId, item.clientId);
                },
              }),
            )
          : h("p", { class: "send-status", text: this.sendStatus(item) }),
      ),
    );
  }

  sendStatus(item) {
    if (item.state === "sending") return "Sending…";
    if (item.files.some((file) => file.state === "uploading")) return "Uploading files…";
    return "Waiting to send…";
  }

  showUploadProgress({ key, loaded, total }) {
    const progress = this.pendingList.querySelector(`li[data-upload-key="${CSS.escape(key)}"] progress`);
    if (!progress) return;
    progress.max = total || 1;
    progress.value = loaded;
  }

  // --- Reactions ---------------------------------------------------------------------------------

  openPicker(messageId, button) {
    if (!this.picker.hidden && this.pickerFor === messageId) {
      this.closePicker();
      return;
    }
    this.pickerFor = messageId;
    this.pickerOpener = button;
    this.picker.hidden = false;
    // Place it above the button, kept inside the window (JS-set styles are CSP-safe).
    const rect = button.getBoundingClientRect();
    const width = this.picker.offsetWidth;
    const left = Math.max(8, Math.min(rect.right - width, window.innerWidth - width - 8));
    const top = rect.top - this.picker.offsetHeight - 6;
    this.picker.style.left = `${left}px`;
    this.picker.style.top = `${top < 8 ? rect.bottom + 6 : top}px`;
    this.picker.querySelector("button")?.focus();
  }

  closePicker({ restoreFocus = false } = {}) {
    if (this.picker.hidden) return;
    this.picker.hidden = true;
    if (restoreFocus) this.pickerOpener?.focus();
    this.pickerFor = null;
  }

  async toggleReaction(messageId, emoji, add) {
    try {
      if (add) {
        const message = await api.post(`messages/${messageId}/reactions/`, { emoji });
        if (!this.socketLive()) this.store.upsertMessage(message);
      } else {
        await api.delete(`messages/${messageId}/reactions/${encodeURIComponent(emoji)}/`);
        if (!this.socketLive()) this.store.upsertMessage(await api.get(`messages/${messageId}/`));
      }
    } catch (error) {
      toast(`Could not change the reaction: ${error.message}`);
    }
  }

  // --- Editing and deleting ----------------------------------------------------------------------

  /** Edit the newest message of mine (↑ in an empty composer). Return whether there was one. */
  editLastOwn() {
    const history = this.store.histories.get(this.roomId);
    const mine = history?.messages.findLast((message) => message.author.id === this.store.me.id && !message.deleted);
    if (!mine) return false;
    this.startEdit(mine.id);
    return true;
  }

  startEdit(messageId) {
    if (this.editing) this.endEdit();
    const message = this.store.histories.get(this.roomId)?.byId.get(messageId);
    const article = this.list.querySelector(`article[data-id="${messageId}"]`);
    if (!message || !article || message.deleted) return;
    const body = article.querySelector(".message-body");
    const fieldId = `edit-${messageId}`;
    const error = h("p", { class: "field-error", id: `${fieldId}-error`, role: "alert" });
    const input = h("textarea", {
      id: fieldId,
      class: "edit-input",
      rows: "2",
      "aria-describedby": `${fieldId}-hint ${fieldId}-error`,
    });
    input.value = message.body;
    const form = h(
      "form",
      { class: "edit-form", novalidate: true },
      h("label", { for: fieldId, class: "visually-hidden", text: "Edit message" }),
      input,
      h(
        "div",
        { class: "edit-actions" },
        h("span", { class: "hint", id: `${fieldId}-hint`, text: "Esc to cancel · Enter to save" }),
        h("button", { type: "button", text: "Cancel", onclick: () => this.endEdit({ focusComposer: true }) }),
        h("button", { type: "submit", class: "primary", text: "Save" }),
      ),
      error,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveEdit(messageId, input.value, error);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        this.endEdit({ focusComposer: true });
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    body.replaceWith(form);
    article.classList.add("editing");
    this.editing = { id: messageId, element: article };
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  async saveEdit(messageId, text, errorElement) {
    const trimmed = text.trim();
    const length = [...trimmed].length;
    if (!trimmed) {
      errorElement.textContent = "A message cannot be empty. To remove it, use Delete.";
      return;
    }
    if (length > this.maxLength) {
      errorElement.textContent = `Too long: ${length} characters; the limit is ${this.maxLength}.`;
      return;
    }
    try {
      const message = await api.patch(`messages/${messageId}/`, { body: trimmed });
      this.endEdit({ focusComposer: true });
      this.store.upsertMessage(message);
    } catch (error) {
      errorElement.textContent = error instanceof ApiError ? (error.fields.body ?? error.message) : String(error);
    }
  }

  endEdit({ focusComposer = false } = {}) {
    if (!this.editing) return;
    const { id, element } = this.editing;
    this.editing = null;
    const message = this.store.histories.get(this.roomId)?.byId.get(id);
    if (message && element.isConnected) element.replaceWith(this.messageElement(message));
    this.decorate();
    if (focusComposer) $("#composer-input")?.focus();
  }

  /** Copy a permalink: it opens the conversation at this message for anyone in the room. */
  async copyLink(message) {
    const link = `${window.location.origin}/rooms/${message.room}/?message=${message.id}`;
    try {
      await navigator.clipboard.writeText(link);
      toast("Link copied.");
    } catch {
      // No clipboard (an insecure origin, or permission refused): show it to copy by hand.
      toast(`Link: ${link}`);
    }
  }

  async setPinned(messageId, pinned) {
    try {
      if (pinned) await api.post(`messages/${messageId}/pin/`);
      else await api.delete(`messages/${messageId}/pin/`);
      if (!this.socketLive()) this.store.upsertMessage(await api.get(`messages/${messageId}/`));
      toast(pinned ? "Pinned to this room." : "Unpinned.");
    } catch (error) {
      toast(`Could not ${pinned ? "pin" : "unpin"} the message: ${error.message}`);
    }
  }

  async reportMessage(messageId, author) {
    const answer = await this.confirm({
      title: "Report message?",
      text: `The site's moderators will see the message from ${author} and your reason; ${author} is not told who reported it.`,
      action: "Report",
      askReason: true,
      reasonRequired: true,
      reasonMax: 1000,
    });
    if (!answer) return;
    try {
      await api.post(`messages/${messageId}/report/`, { reason: answer.reason });
      toast("Reported. The moderators will look at it.");
    } catch (error) {
      toast(`Could not report the message: ${error.message}`);
    }
  }

  async deleteMessage(messageId) {
    const confirmed = await this.confirm({
      title: "Delete message?",
      text: "It will be gone for everyone. This cannot be undone.",
      action: "Delete",
    });
    if (!confirmed) return;
    try {
      await api.delete(`messages/${messageId}/`);
      if (!this.socketLive()) this.store.upsertMessage(await api.get(`messages/${messageId}/`));
    } catch (error) {
      toast(`Could not delete the message: ${error.message}`);
    }
  }
}
