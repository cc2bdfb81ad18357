// After a message is sent: the @names in it that reached nobody because those
// people are not in the room. The server renders mentions of members only
// (messaging/services.py), so an @name left as plain text in the message's
// html is either nobody or someone outside the room; the user search tells
// which. The sender is told, and offered to add them when they may: owners
// and admins of a channel, anyone in a group conversation.

import { api } from "./api.js";
import { $, h, safeHtml, toast } from "./dom.js";

// An @name as the server reads one (messaging/markdown.py, accounts.models.USERNAME_PATTERN).
const MENTION = /(?<![A-Za-z0-9_@.])@([A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,28}[A-Za-z0-9_])?)/g;
// Text in these is never a mention.
const NOT_MENTIONS = new Set(["CODE", "PRE", "A"]);
const LOOKUPS_MAX = 5;

/** Return the lower-cased @names in a message's html that the server left as text. */
export function unmentionedNames(html) {
  const names = new Set();
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        for (const match of child.data.matchAll(MENTION)) names.add(match[1].toLowerCase());
      } else if (child.nodeType === Node.ELEMENT_NODE && !NOT_MENTIONS.has(child.tagName)) {
        if (!child.classList.contains("mention")) walk(child);
      }
    }
  };
  walk(safeHtml(html));
  return [...names];
}

export class OutsiderNotice {
  constructor(store) {
    this.store = store;
    this.element = $("#outsider-notice");
    this.outsiders = new Map(); // roomId → Map(userId → user)
    store.addEventListener("sent", (event) => this.check(event.detail.message));
    store.addEventListener("room", (event) => {
      if (!store.rooms.has(event.detail.roomId)) this.outsiders.delete(event.detail.roomId);
      if (event.detail.roomId === store.activeRoomId) this.render();
    });
  }

  /** Look up the names a message of ours left as text; note those who are people. */
  async check(message) {
    const names = unmentionedNames(message.html).slice(0, LOOKUPS_MAX);
    if (!names.length) return;
    const found = [];
    for (const name of names) {
      try {
        const page = await api.get(`users/?q=${encodeURIComponent(name)}&limit=20`);
        const user = page.results.find((candidate) => candidate.username.toLowerCase() === name);
        if (user && user.id !== this.store.me.id) found.push(user);
      } catch {
        // Unreachable just now: the sender can still add people from the members panel.
      }
    }
    if (!found.length || !this.store.rooms.has(message.room)) return;
    if (!this.outsiders.has(message.room)) this.outsiders.set(message.room, new Map());
    for (const user of found) this.outsiders.get(message.room).set(user.id, user);
    if (message.room === this.store.activeRoomId) this.render();
  }

  /** Whether the user may add people to this room (rooms/services.py member_add). */
  canAdd(room) {
    if (room.kind === "direct") return (room.members ?? []).length > 2;
    return ["owner", "admin"].includes(room.my_role);
  }

  /** Show the open room's notes. */
  render() {
    const roomId = this.store.activeRoomId;
    const room = this.store.rooms.get(roomId);
    const people = room ? [...(this.outsiders.get(roomId)?.values() ?? [])] : [];
    this.element.hidden = people.length === 0;
    if (!people.length) {
      this.element.replaceChildren();
      return;
    }
    const place = room.kind === "channel" ? "this channel" : "this conversation";
    const canAdd = this.canAdd(room);
    this.element.replaceChildren(
      ...people.map((user) =>
        h(
          "p",
          { class: "outsider" },
          h("span", {
            text: canAdd
              ? `@${user.username} is not in ${place} — add them?`
              : `@${user.username} is not in ${place}, so they were not notified.`,
          }),
          canAdd
            ? h("button", {
                type: "button",
                class: "primary",
                text: `Add @${user.username}`,
                onclick: (event) => this.add(room, user, event.currentTarget),
              })
            : null,
          h("button", {
            type: "button",
            text: "Dismiss",
            "aria-label": `Dismiss the note about @${user.username}`,
            onclick: () => this.forget(room.id, user.id),
          }),
        ),
      ),
    );
  }

  forget(roomId, userId) {
    this.outsiders.get(roomId)?.delete(userId);
    this.render();
    $("#composer-input")?.focus();
  }

  async add(room, user, button) {
    button.disabled = true;
    const label = room.kind === "channel" ? `#${room.name}` : "the conversation";
    try {
      await api.post(`rooms/${room.id}/members/`, { user: user.id });
      toast(`${user.display_name || user.username} (@${user.username}) was added to ${label}.`);
      this.forget(room.id, user.id);
    } catch (error) {
      button.disabled = false;
      toast(`Could not add @${user.username}: ${error.message}`);
    }
  }
}
