// What the page knows: rooms, the loaded part of each room's history, messages
// being sent, who is online and who is typing. Views listen for its events
// and redraw; nothing here touches the DOM.
//
// Events (EventTarget, detail in braces):
//   "rooms"     the room list or a room's counts changed
//   "room"      {roomId}                   a room's name, topic, role or members changed
//   "messages"  {roomId, op, message?}     op: reset | upsert | prepend
//   "pending"   {roomId}                   a message being sent was queued, changed or settled
//   "upload"    {roomId, key, loaded, total}  a file of a message being sent uploaded some more
//   "sent"      {message}                  a message sent from this page was stored
//   "presence"  {userIds}
//   "typing"    {roomId}
//   "user"      {user}                     someone's name changed (already applied here)
//   "reply"     {message}                  a thread reply arrived or changed (threads.js shows it)

const TYPING_SHOWN_MS = 6000;

// Room fields that differ per reader: an event's shared room payload carries
// zeros for them, so they are kept from what this page already knows.
const PERSONAL_FIELDS = ["unread_count", "mention_count", "last_read_message_id"];
// The reader's notification settings for a room: kept like the counts, but not zeroed.
const SETTING_FIELDS = ["notify_level", "muted_until"];

/** Whether the reader silenced a room: level "none", or muted until a time still to come. */
export function isMuted(room) {
  return room.notify_level === "none" || (room.muted_until != null && new Date(room.muted_until) > new Date());
}

export class Store extends EventTarget {
  constructor(me) {
    super();
    this.me = me;
    this.rooms = new Map();
    this.histories = new Map();
    this.pending = new Map();
    this.online = new Set();
    this.presenceHeardAt = new Map();
    this.typing = new Map();
    this.activeRoomId = null;
    // Everyone met so far (authors, members), by id: names for mentions and reactions.
    this.people = new Map([[me.id, me]]);
  }

  rememberPeople(users) {
    for (const user of users) if (user?.id !== undefined) this.people.set(user.id, user);
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // --- Rooms ------------------------------------------------------------------------------

  /** Replace every room with a fresh list from GET rooms/. */
  setRooms(rooms) {
    this.rooms = new Map(rooms.map((room) => [room.id, room]));
    for (const room of rooms) this.rememberPeople(room.members ?? []);
    for (const roomId of this.histories.keys()) {
      if (!this.rooms.has(roomId)) this.histories.delete(roomId);
    }
    this.emit("rooms");
  }

  /** Add or update a room. `personal`: the payload came from REST with this reader's counts. */
  upsertRoom(room, { personal = false } = {}) {
    const known = this.rooms.get(room.id);
    const merged = { ...known, ...room };
    if (known && !personal) {
      for (const field of PERSONAL_FIELDS) merged[field] = known[field];
      for (const field of SETTING_FIELDS) if (field in known) merged[field] = known[field];
    }
    for (const field of PERSONAL_FIELDS) merged[field] ??= 0;
    if (known && room.members === undefined && known.members) merged.members = known.members;
    this.rememberPeople(merged.members ?? []);
    this.rooms.set(room.id, merged);
    this.emit("rooms");
    this.emit("room", { roomId: room.id });
    return merged;
  }

  removeRoom(roomId) {
    this.rooms.delete(roomId);
    this.histories.delete(roomId);
    this.pending.delete(roomId);
    this.typing.delete(roomId);
    this.emit("rooms");
    this.emit("room", { roomId });
  }

  patchRoom(roomId, changes) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    Object.assign(room, changes);
    this.emit("rooms");
  }

  /** Channels by name, then conversations by who is in them: the sidebar's order. */
  sortedRooms() {
    const byLabel = (a, b) => this.roomLabel(a).localeCompare(this.roomLabel(b), undefined, { sensitivity: "base" });
    const rooms = [...this.rooms.values()].filter((room) => room.my_role);
    return {
      channels: rooms.filter((room) => room.kind === "channel").sort(byLabel),
      directs: rooms.filter((room) => room.kind === "direct").sort(byLabel),
    };
  }

  /** Other people of a direct room (the user alone in a note-to-self room). */
  otherMembers(room) {
    const members = room.members ?? [];
    const others = members.filter((user) => user.id !== this.me.id);
    return others.length ? others : members;
  }

  roomLabel(room) {
    if (!room) return "";
    if (room.kind === "channel") return room.name;
    const others = (room.members ?? []).filter((user) => user.id !== this.me.id);
    if (!others.length) return `${this.me.display_name} (you)`;
    return others.map((user) => user.display_name || user.username).join(", ");
  }

  totalUnread() {
    let unread = 0;
    let mentions = 0;
    for (const room of this.rooms.values()) {
      // Muted rooms stay out of the title's count.
      if (!room.my_role || isMuted(room)) continue;
      unread += room.unread_count || 0;
      mentions += room.mention_count || 0;
    }
    return { unread, mentions };
  }

  // --- History ----------------------------------------------------------------------------

  history(roomId) {
    let history = this.histories.get(roomId);
    if (!history) {
      history = { messages: [], byId: new Map(), early: [], hasMore: true, loaded: false, loading: false };
      this.histories.set(roomId, history);
    }
    return history;
  }

  /** Start a room's history afresh with its newest page. */
  setHistory(roomId, messages, hasMore) {
    const history = this.history(roomId);
    // Messages that arrived live while the page was on its way may be newer than it.
    const byId = new Map(messages.map((message) => [message.id, message]));
    for (const early of history.early ?? []) byId.set(early.id, early);
    history.early = [];
    history.messages = [...byId.values()].sort((a, b) => a.id - b.id);
    history.byId = byId;
    history.hasMore = hasMore;
    history.loaded = true;
    for (const message of messages) this.settlePending(message);
    this.emit("messages", { roomId, op: "reset" });
  }

  /** Put an older page in front of what is loaded. */
  prependHistory(roomId, messages, hasMore) {
    const history = this.history(roomId);
    const first = history.messages[0]?.id ?? Infinity;
    const older = messages.filter((message) => message.id < first && !history.byId.has(message.id));
    history.messages = [...older, ...history.messages];
    for (const message of older) history.byId.set(message.id, message);
    history.hasMore = hasMore;
    this.emit("messages", { roomId, op: "prepend", messages: older });
  }

  /** Add or replace one message (new, edited, deleted, reacted to). Return whether it was new. */
  upsertMessage(message) {
    this.settlePending(message);
    if (message.parent) {
      this.emit("reply", { message });
      // A reply lives in its thread; the room lists it only when it was also sent there.
      if (!message.broadcast) return false;
    }
    const history = this.histories.get(message.room);
    if (history?.loading && !history.loaded) {
      // The first page is being fetched: keep this for when it lands.
      history.early = [...(history.early ?? []).filter((known) => known.id !== message.id), message];
      return false;
    }
    // A room whose history is not loaded fetches it when opened; keep nothing now.
    if (!history?.loaded) return false;
    const isNew = !history.byId.has(message.id);
    history.byId.set(message.id, message);
    if (isNew) {
      const list = history.messages;
      let index = list.length;
      while (index > 0 && list[index - 1].id > message.id) index -= 1;
      list.splice(index, 0, message);
    } else {
      const index = history.messages.findIndex((known) => known.id === message.id);
      history.messages[index] = message;
    }
    this.emit("messages", { roomId: message.room, op: "upsert", message, isNew });
    return isNew;
  }

  /** A thread's root has a new summary (`thread` of a reply's frame): show it under the root. */
  patchThreadSummary(roomId, summary) {
    const history = this.histories.get(roomId);
    const root = history?.byId.get(summary.root);
    if (!root) return;
    const { root: _id, ...changes } = summary;
    const updated = { ...root, ...changes };
    history.byId.set(updated.id, updated);
    const index = history.messages.findIndex((known) => known.id === updated.id);
    if (index >= 0) history.messages[index] = updated;
    this.emit("messages", { roomId, op: "upsert", message: updated, isNew: false });
  }

  // --- Messages being sent ----------------------------------------------------------------

  pendingFor(roomId) {
    let pending = this.pending.get(roomId);
    if (!pending) {
      pending = new Map();
      this.pending.set(roomId, pending);
    }
    return pending;
  }

  addPending(roomId, clientId, body, files = []) {
    this.pendingFor(roomId).set(clientId, {
      clientId,
      roomId,
      body,
      files,
      state: "queued",
      error: "",
      retryable: true,
      notBefore: 0,
      createdAt: new Date(),
    });
    this.emit("pending", { roomId });
  }

  updatePending(roomId, clientId, changes) {
    const item = this.pending.get(roomId)?.get(clientId);
    if (!item) return;
    Object.assign(item, changes);
    this.emit("pending", { roomId });
  }

  removePending(roomId, clientId) {
    if (this.pending.get(roomId)?.delete(clientId)) this.emit("pending", { roomId });
  }

  /** A message of ours arrived (REST reply or socket): it is no longer pending. */
  settlePending(message) {
    if (!message.client_id || message.author?.id !== this.me.id) return;
    if (!this.pending.get(message.room)?.has(message.client_id)) return;
    this.removePending(message.room, message.client_id);
    this.emit("sent", { message });
  }

  // --- People -------------------------------------------------------------------------------

  /** Someone changed their display name (`user.updated`): show the new one wherever they appear. */
  updateUser(user) {
    const renamed = (known) => (known?.id === user.id ? { ...known, ...user } : known);
    if (user.id === this.me.id) Object.assign(this.me, user);
    for (const room of this.rooms.values()) {
      if (!room.members?.some((member) => member.id === user.id)) continue;
      room.members = room.members.map(renamed);
      this.emit("room", { roomId: room.id });
    }
    for (const [roomId, history] of this.histories) {
      const theirs = [];
      history.messages = history.messages.map((message) => {
        if (message.author?.id !== user.id) return message;
        const updated = { ...message, author: renamed(message.author) };
        history.byId.set(updated.id, updated);
        theirs.push(updated);
        return updated;
      });
      if (theirs.length) this.emit("messages", { roomId, op: "renamed", messages: theirs });
    }
    for (const entries of this.typing.values()) {
      const entry = entries.get(user.id);
      if (entry) entry.user = renamed(entry.user);
    }
    this.emit("rooms");
    this.emit("user", { user });
  }

  // --- Presence and typing ------------------------------------------------------------------

  /** Apply a `presence` frame: live news always wins. */
  setPresence(userId, online) {
    this.presenceHeardAt.set(userId, performance.now());
    if (online) this.online.add(userId);
    else this.online.delete(userId);
    this.emit("presence", { userIds: [userId] });
  }

  /** Apply a REST presence answer, except for people a frame has spoken about since `askedAt`. */
  applyPresenceSnapshot(userIds, onlineIds, askedAt) {
    const online = new Set(onlineIds);
    const changed = [];
    for (const userId of userIds) {
      if ((this.presenceHeardAt.get(userId) ?? -1) > askedAt) continue;
      this.presenceHeardAt.set(userId, askedAt);
      if (online.has(userId)) this.online.add(userId);
      else this.online.delete(userId);
      changed.push(userId);
    }
    this.emit("presence", { userIds: changed });
  }

  setTyping(roomId, user) {
    if (!this.typing.has(roomId)) this.typing.set(roomId, new Map());
    this.typing.get(roomId).set(user.id, { user, until: Date.now() + TYPING_SHOWN_MS });
    this.emit("typing", { roomId });
  }

  clearTyping(roomId, userId) {
    if (this.typing.get(roomId)?.delete(userId)) this.emit("typing", { roomId });
  }

  /** People typing in a room right now (expired entries are dropped). */
  typists(roomId) {
    const entries = this.typing.get(roomId);
    if (!entries) return [];
    const now = Date.now();
    for (const [userId, entry] of entries) if (entry.until <= now) entries.delete(userId);
    return [...entries.values()].map((entry) => entry.user);
  }
}
