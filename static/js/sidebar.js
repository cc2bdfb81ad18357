// The room list: channels and direct messages with unread and mention badges,
// presence dots for conversations, and Alt+↑/↓ to move between rooms.

import { $, h } from "./dom.js";
import { isMuted } from "./store.js";

export class Sidebar {
  constructor(store, { onOpen }) {
    this.store = store;
    this.onOpen = onOpen;
    this.channelList = $("#channel-list");
    this.dmList = $("#dm-list");
    store.addEventListener("rooms", () => this.render());
    store.addEventListener("presence", () => this.render());
    document.addEventListener("keydown", (event) => this.onKey(event));
  }

  render() {
    const { channels, directs } = this.store.sortedRooms();
    this.channelList.replaceChildren(...channels.map((room) => this.item(room)));
    this.dmList.replaceChildren(...directs.map((room) => this.item(room)));
    $("#channel-empty").hidden = channels.length > 0;
    $("#dm-empty").hidden = directs.length > 0;
  }

  item(room) {
    const store = this.store;
    const active = room.id === store.activeRoomId;
    const label = store.roomLabel(room);
    const unread = room.unread_count || 0;
    const mentions = room.mention_count || 0;
    const muted = isMuted(room);
    // The accessible name carries what the badges show.
    const spoken = [
      room.kind === "channel" && room.visibility === "private" ? `${label} (private)` : label,
      muted ? "muted" : "",
      unread ? `${unread} unread` : "",
      mentions ? `${mentions} mention${mentions === 1 ? "" : "s"}` : "",
    ]
      .filter(Boolean)
      .join(", ");
    let icon;
    if (room.kind === "channel") {
      icon =
        room.visibility === "private"
          ? h("span", { class: "room-icon icon icon-lock", "aria-hidden": "true" })
          : h("span", { class: "room-icon", "aria-hidden": "true", text: "#" });
    } else {
      const others = store.otherMembers(room);
      const anyOnline = others.some((user) => user.id !== store.me.id && store.online.has(user.id));
      icon = h("span", {
        class: `presence-dot${anyOnline ? " online" : ""}${others.length > 1 ? " group" : ""}`,
        "aria-hidden": "true",
      });
    }
    const link = h(
      "a",
      {
        href: `/rooms/${room.id}/`,
        class: `room-link${active ? " active" : ""}${unread ? " unread" : ""}${muted ? " muted" : ""}`,
        "aria-current": active ? "page" : false,
        "aria-label": spoken,
        // Whose accounts a conversation is with, whatever names they chose.
        title:
          room.kind === "direct"
            ? store
                .otherMembers(room)
                .map((user) => `@${user.username}`)
                .join(", ")
            : false,
        dataset: { roomId: room.id },
        onclick: (event) => {
          if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
          event.preventDefault();
          this.onOpen(room.id);
        },
      },
      icon,
      h("span", { class: "room-name", text: label }),
      mentions ? h("span", { class: "badge mention-badge", "aria-hidden": "true", text: `@${mentions}` }) : null,
      unread ? h("span", { class: "badge", "aria-hidden": "true", text: unread > 99 ? "99+" : String(unread) }) : null,
    );
    return h("li", {}, link);
  }

  /** Alt+↑/↓: the previous or next room, wrapping around, from anywhere on the page. */
  onKey(event) {
    if (!event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
    const { channels, directs } = this.store.sortedRooms();
    const order = [...channels, ...directs].map((room) => room.id);
    if (!order.length) return;
    event.preventDefault();
    const here = order.indexOf(this.store.activeRoomId);
    const step = event.key === "ArrowUp" ? -1 : 1;
    const next = here === -1 ? 0 : (here + step + order.length) % order.length;
    this.onOpen(order[next], { focus: "composer" });
  }
}
