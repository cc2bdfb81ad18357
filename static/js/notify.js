// Telling the user about new messages: unread counts in the page title, and a
// desktop notification for a direct message or an @mention while the tab is
// in the background (only once the user has allowed notifications).

import { $ } from "./dom.js";

const BODY_MAX = 180;

export class Notifier {
  constructor(store, { onOpen, icon }) {
    this.store = store;
    this.onOpen = onOpen;
    this.icon = icon;
    this.button = $("#notify-button");
    store.addEventListener("rooms", () => this.updateTitle());
    store.addEventListener("room", () => this.updateTitle());
    if ("Notification" in window && Notification.permission === "default") {
      this.button.hidden = false;
      this.button.addEventListener("click", async () => {
        // Browsers only ask in response to a click, never on page load.
        await Notification.requestPermission();
        this.button.hidden = Notification.permission === "default";
      });
    }
  }

  updateTitle() {
    const { unread, mentions } = this.store.totalUnread();
    const room = this.store.rooms.get(this.store.activeRoomId);
    const where = room ? `${room.kind === "channel" ? "#" : ""}${this.store.roomLabel(room)} · Chat` : "Chat";
    const counts = mentions ? `(${unread} · @${mentions}) ` : unread ? `(${unread}) ` : "";
    document.title = counts + where;
    const badge = $("#menu-badge");
    if (badge) {
      badge.hidden = !unread;
      badge.textContent = unread > 99 ? "99+" : String(unread);
    }
  }

  /** Maybe notify about a message just received; `mentionsMe` was worked out by the caller. */
  message(message, { mentionsMe }) {
    const room = this.store.rooms.get(message.room);
    if (!room || message.author.id === this.store.me.id || message.deleted) return;
    if (room.kind !== "direct" && !mentionsMe) return;
    // Only when the user is not looking at the page.
    if (document.visibilityState === "visible" && document.hasFocus()) return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const author = message.author.display_name || message.author.username;
    const title = room.kind === "direct" ? author : `${author} in #${room.name}`;
    const body = message.body.length > BODY_MAX ? `${message.body.slice(0, BODY_MAX)}…` : message.body;
    try {
      const notification = new Notification(title, { body, tag: `room-${room.id}`, icon: this.icon });
      notification.addEventListener("click", () => {
        window.focus();
        this.onOpen(room.id);
        notification.close();
      });
    } catch {
      // Some browsers (Android Chrome) only notify from a service worker; the title still counts.
    }
  }
}
