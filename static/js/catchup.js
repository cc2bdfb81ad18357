// Catching up: "Jump to newest" while scrolled up (with how many new messages
// wait below), "Mark read" for the open room, "Mark all as read" for every
// room (Shift+Esc, POST rooms/read/), and the Unreads view that lists the
// rooms with something unread.

import { api } from "./api.js";
import { $, h, toast } from "./dom.js";

export class CatchUp {
  constructor(store, { timeline, openRoom }) {
    this.store = store;
    this.timeline = timeline;
    this.openRoom = openRoom;
    this.jump = $("#jump-newest");
    this.markRoom = $("#mark-read-button");
    this.dialog = $("#unreads-dialog");
    this.list = $("#unreads-list");
    this.badge = $("#unreads-badge");

    $("#messages").addEventListener("scroll", () => this.renderJump(), { passive: true });
    store.addEventListener("rooms", () => this.render());
    store.addEventListener("messages", () => this.renderJump());
    this.jump.addEventListener("click", () => this.jumpToNewest());
    this.markRoom.addEventListener("click", () => this.markRoomRead(this.store.activeRoomId));
    $("#unreads-button").addEventListener("click", () => this.openUnreads());
    $("#unreads-mark-all").addEventListener("click", () => this.markAllRead());
    for (const button of this.dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => this.dialog.close());
    }
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && event.shiftKey && !event.ctrlKey && !event.altKey && !event.metaKey) {
        event.preventDefault();
        this.markAllRead();
      }
    });
  }

  /** Redraw everything that follows the rooms' read state. */
  render() {
    this.renderJump();
    const room = this.store.rooms.get(this.store.activeRoomId);
    this.markRoom.hidden = !(room?.my_role && (room.unread_count || room.mention_count));
    const unread = this.unreadRooms();
    this.badge.hidden = unread.length === 0;
    this.badge.textContent = String(unread.length);
    $("#unreads-button").setAttribute(
      "aria-label",
      unread.length ? `Unreads: ${unread.length} room${unread.length === 1 ? "" : "s"}` : "Unreads",
    );
    if (this.dialog.open) this.renderList();
  }

  /** Rooms of the user's with unread messages, most recently active first. */
  unreadRooms() {
    return [...this.store.rooms.values()]
      .filter((room) => room.my_role && (room.unread_count || room.mention_count))
      .sort((a, b) => (b.last_message_id ?? 0) - (a.last_message_id ?? 0));
  }

  // --- Jump to newest ---------------------------------------------------------------------

  renderJump() {
    const room = this.store.rooms.get(this.store.activeRoomId);
    const history = this.store.histories.get(this.store.activeRoomId);
    if (!room || !history?.loaded || this.timeline.roomId !== room.id || this.timeline.atBottom()) {
      this.jump.hidden = true;
      return;
    }
    // Until the reader reaches the bottom, what arrived below is what is unread.
    const waiting = room.unread_count || 0;
    this.jump.hidden = false;
    this.jump.textContent = waiting ? `${waiting} new message${waiting === 1 ? "" : "s"} · Jump to newest` : "Jump to newest";
    this.jump.setAttribute(
      "aria-label",
      waiting ? `Jump to newest, ${waiting} new message${waiting === 1 ? "" : "s"} below` : "Jump to newest",
    );
  }

  jumpToNewest() {
    this.timeline.scrollToBottom();
    this.timeline.checkSeen();
    this.jump.hidden = true;
    // The button is gone: keep the keyboard in the conversation.
    $("#messages").focus();
  }

  // --- Marking read -----------------------------------------------------------------------

  async markRoomRead(roomId) {
    const room = this.store.rooms.get(roomId);
    if (!room?.last_message_id || room.last_message_id <= room.last_read_message_id) {
      if (room) this.store.patchRoom(roomId, { unread_count: 0, mention_count: 0 });
      return;
    }
    const messageId = room.last_message_id;
    try {
      await api.post(`rooms/${roomId}/read/`, { message_id: messageId });
      this.store.patchRoom(roomId, { last_read_message_id: messageId, unread_count: 0, mention_count: 0 });
    } catch (error) {
      toast(`Could not mark it read: ${error.message}`);
    }
  }

  async markAllRead() {
    try {
      const { rooms } = await api.post("rooms/read/");
      for (const moved of rooms) {
        if (!this.store.rooms.has(moved.room)) continue;
        this.store.patchRoom(moved.room, {
          last_read_message_id: moved.message_id,
          unread_count: 0,
          mention_count: 0,
        });
      }
      toast(
        rooms.length
          ? `Marked ${rooms.length} room${rooms.length === 1 ? "" : "s"} as read.`
          : "Everything was already read.",
      );
    } catch (error) {
      toast(`Could not mark everything read: ${error.message}`);
    }
  }

  // --- The Unreads view -------------------------------------------------------------------

  openUnreads() {
    this.renderList();
    this.dialog.showModal();
    (this.list.querySelector("button") ?? $("#unreads-mark-all")).focus();
  }

  renderList() {
    const rooms = this.unreadRooms();
    $("#unreads-empty").hidden = rooms.length > 0;
    $("#unreads-mark-all").disabled = rooms.length === 0;
    this.list.replaceChildren(
      ...rooms.map((room) => {
        const label = room.kind === "channel" ? `#${room.name}` : this.store.roomLabel(room);
        const unread = room.unread_count || 0;
        const mentions = room.mention_count || 0;
        const counts = [`${unread} unread`, ...(mentions ? [`${mentions} mention${mentions === 1 ? "" : "s"}`] : [])];
        return h(
          "li",
          { class: "unread-item" },
          h(
            "button",
            {
              type: "button",
              class: "unread-open",
              "aria-label": `Open ${label}, ${counts.join(", ")}`,
              onclick: () => {
                this.dialog.close();
                this.openRoom(room.id);
              },
            },
            h("span", { class: "unread-room", text: label }),
            h("span", { class: "unread-counts", text: counts.join(" · ") }),
          ),
          h("button", {
            type: "button",
            class: "quiet-button",
            "aria-label": `Mark ${label} read`,
            text: "Mark read",
            onclick: () => this.markRoomRead(room.id),
          }),
        );
      }),
    );
  }
}
