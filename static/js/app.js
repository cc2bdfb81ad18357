// The chat screen: wires the socket, the store and the views together.
//
// Start-up order matters for "nothing is missed": the socket connects first
// and the page loads its state over REST once the socket has said hello, so
// every event after that snapshot arrives on the socket. Frames that come in
// while a REST load is in flight wait in a queue and are applied after it.

import { api, stopRequests } from "./api.js";
import { CatchUp } from "./catchup.js";
import { $, CHANNEL_HREF, h, mentionsUser, toast } from "./dom.js";
import { Composer } from "./composer.js";
import { BellMenu, PreferencesDialog } from "./notifications.js";
import { Notifier } from "./notify.js";
import { Outbox } from "./outbox.js";
import { OutsiderNotice } from "./outsiders.js";
import { BrowseDialog, CreateDialog, DirectDialog, MembersPanel, SettingsDialog, confirmDialog } from "./panels.js";
import { SearchPanel } from "./search.js";
import { PinsPanel, ThreadPanel, ThreadsView } from "./threads.js";
import { Sidebar } from "./sidebar.js";
import { ChatSocket } from "./socket.js";
import { Store } from "./store.js";
import { Timeline } from "./timeline.js";

const HELLO_WAIT_MS = 3000;
const READ_DELAY_MS = 300;
const PRESENCE_BATCH = 200;

const CONNECTION_LABELS = {
  connecting: "Connecting…",
  syncing: "Catching up…",
  live: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline: waiting for the network",
  stopped: "Disconnected",
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class App {
  constructor(root) {
    this.root = root;
    const me = {
      id: Number(root.dataset.userId),
      username: root.dataset.username,
      display_name: root.dataset.displayName,
    };
    this.maxLength = Number(root.dataset.maxLength);
    this.lastRoomKey = `chat.lastRoom.${me.id}`;
    this.store = new Store(me);
    this.socket = new ChatSocket();
    this.loaded = false;
    this.queue = [];
    this.everLoaded = false;
    this.stale = false;
    this.loadChain = Promise.resolve();
    this.readTimers = new Map();
    this.presenceWanted = new Set();
    this.presenceQueue = new Set();

    const store = this.store;
    const confirm = (options) => confirmDialog(options);
    const askPresence = (ids) => this.askPresence(ids);
    this.sidebar = new Sidebar(store, { onOpen: (id, options) => this.openRoom(id, options) });
    this.timeline = new Timeline(store, {
      confirm,
      askPresence,
      maxLength: this.maxLength,
      onSeen: (roomId, messageId) => this.seen(roomId, messageId),
      onRetry: (item) => this.outbox.retry(item),
      socketLive: () => this.socket.state === "live",
      onOpenThread: (rootId, highlightId = null) => this.thread.open(rootId, { highlightId }),
    });
    this.outbox = new Outbox(store, this.socket);
    this.composer = new Composer(store, {
      socket: this.socket,
      outbox: this.outbox,
      timeline: this.timeline,
      maxLength: this.maxLength,
      uploadMaxBytes: Number(root.dataset.uploadMaxBytes),
    });
    this.outsiders = new OutsiderNotice(store);
    this.notifier = new Notifier(store, { onOpen: (id) => this.openRoom(id), icon: root.dataset.icon });
    this.bellMenu = new BellMenu(store);
    this.preferencesDialog = new PreferencesDialog();
    this.members = new MembersPanel(store, { confirm, askPresence, onNewRoom: (room) => this.adopt(room) });
    this.catchUp = new CatchUp(store, { timeline: this.timeline, openRoom: (id) => this.openRoom(id) });
    this.createDialog = new CreateDialog({ store: this.store, onCreated: (room) => this.adopt(room) });
    this.browseDialog = new BrowseDialog({
      store,
      onJoined: (room) => this.adopt(room),
      onOpen: (id) => this.openRoom(id),
    });
    this.directDialog = new DirectDialog({ store, onOpened: (room) => this.adopt(room) });
    this.settingsDialog = new SettingsDialog({ store, onDeleted: (id) => this.removed(id, { quiet: true }) });
    // Threads, search results and pins share the space beside the conversation: one at a time.
    const onOpenPanel = (panel) => this.sidePanelOpened(panel);
    this.thread = new ThreadPanel(store, { onOpenPanel });
    this.threads = new ThreadsView(store, {
      onOpenPanel,
      onOpenThread: async (root) => {
        await this.openRoom(root.room, { around: root.id, focus: "none" });
        await this.thread.open(root.id);
      },
    });
    this.search = new SearchPanel(store, { onOpenPanel, onOpenResult: (message) => this.openAt(message) });
    this.pins = new PinsPanel(store, { onOpenPanel, onJump: (message) => this.openAt(message) });
    $("#members-button").addEventListener("click", () => {
      if (!$("#members-panel").hidden) this.sidePanelOpened(this.members);
    });

    store.addEventListener("room", (event) => {
      if (event.detail.roomId === store.activeRoomId && store.rooms.has(event.detail.roomId)) this.renderHeader();
    });
    store.addEventListener("typing", (event) => {
      if (event.detail.roomId === store.activeRoomId) this.renderTyping();
    });
    this.wireChrome();
  }

  // --- Start-up and (re)loading ----------------------------------------------------------

  async start() {
    let helloSeen;
    const hello = new Promise((resolve) => {
      helloSeen = resolve;
    });
    this.socket.addEventListener("state", (event) => this.renderConnection(event.detail));
    this.socket.addEventListener("frame", (event) => {
      if (this.loaded) this.apply(event.detail);
      else this.queue.push(event.detail);
    });
    this.socket.addEventListener("ready", (event) => {
      if (!this.started) {
        helloSeen();
        return;
      }
      this.reconnected(event.detail);
    });
    this.socket.addEventListener("deactivated", () => this.deactivated());
    this.socket.addEventListener("refused", () => {
      // Answers 401 when the session is gone, which leads to the log-in page.
      api.get("users/me/").catch(() => {});
    });
    this.socket.start();
    await Promise.race([hello, sleep(HELLO_WAIT_MS)]);
    this.started = true;
    await this.load();
    this.threads.refresh();
  }

  /** Load (or reload) rooms and the open room's history over REST, then apply queued frames. */
  load() {
    this.loadChain = this.loadChain.then(() => this.loadOnce()).catch((error) => {
      // Try again when the socket is back (a failed load means the server is out of reach).
      this.stale = true;
      toast(`Could not load your rooms: ${error.message}`);
      this.loaded = true;
      this.flushQueue();
    });
    return this.loadChain;
  }

  async loadOnce() {
    this.loaded = false;
    this.stale = false;
    const rooms = await api.get("rooms/");
    this.store.setRooms(rooms);
    this.askPresence(rooms.flatMap((room) => (room.members ?? []).map((user) => user.id)));
    if (!this.everLoaded) {
      this.everLoaded = true;
      await this.openInitialRoom();
    } else {
      // Histories may have missed events: keep none but the open room's, reloaded now.
      const active = this.store.activeRoomId;
      for (const roomId of [...this.store.histories.keys()]) {
        if (roomId !== active) this.store.histories.delete(roomId);
      }
      if (active !== null && this.store.rooms.has(active)) await this.timeline.reload();
      else if (active !== null) this.openFallback();
    }
    this.loaded = true;
    this.flushQueue();
  }

  flushQueue() {
    const queued = this.queue;
    this.queue = [];
    for (const frame of queued) this.apply(frame);
  }

  /** The socket is back: after a resume nothing is missing; a fresh start means reload. */
  reconnected({ fresh }) {
    if (fresh || this.stale) {
      this.load();
    } else {
      // The open room's history may have failed to load while the server was away.
      const active = this.store.activeRoomId;
      const history = active === null ? null : this.store.histories.get(active);
      if (history && !history.loaded && !history.loading) this.timeline.reload();
    }
    // Messages typed meanwhile go now, each room's in the order typed.
    this.outbox.resume();
    // Presence changes are not replayed: ask again about everyone shown.
    this.askPresence([...this.presenceWanted], { again: true });
  }

  // --- Frames from the socket ------------------------------------------------------------------

  apply(frame) {
    const store = this.store;
    switch (frame.type) {
      case "message.new":
      case "message.updated":
        if (frame.thread) store.patchThreadSummary(frame.room, frame.thread);
        if (frame.message.parent && frame.message.author.id !== store.me.id) this.threads.refreshSoon();
        if (frame.type === "message.new") this.messageNew(frame.message);
        else this.messageUpdated(frame.message);
        break;
      case "thread.read":
        this.threads.refreshSoon();
        break;
      case "room.added":
      case "room.updated":
        store.upsertRoom(frame.room);
        this.askPresence((frame.room.members ?? []).map((user) => user.id));
        break;
      case "room.removed":
        this.removed(frame.room, { reason: frame.reason });
        break;
      case "member.joined":
      case "member.left":
        this.memberChanged(frame);
        break;
      case "typing":
        store.setTyping(frame.room, frame.user);
        break;
      case "presence":
        store.setPresence(frame.user, frame.status === "online");
        break;
      case "read":
        this.readElsewhere(frame.room, frame.message_id);
        break;
      case "user.updated":
        store.updateUser(frame.user);
        break;
      default:
        break;
    }
  }

  messageNew(message) {
    const store = this.store;
    const room = store.rooms.get(message.room);
    store.clearTyping(message.room, message.author.id);
    // A reply only in its thread counts there, not in the room (threads.js shows it).
    const inRoom = !message.parent || message.broadcast;
    if (room && inRoom) {
      const fromOther = message.author.id !== store.me.id;
      const isNewer = message.id > (room.last_message_id ?? 0);
      const mentionsMe = fromOther && mentionsUser(message, store.me.id);
      const changes = {};
      if (isNewer) changes.last_message_id = message.id;
      // Count it unless the REST snapshot already did (ids up to last_message_id).
      if (fromOther && isNewer && message.id > room.last_read_message_id && !message.deleted) {
        changes.unread_count = (room.unread_count || 0) + 1;
        if (mentionsMe) changes.mention_count = (room.mention_count || 0) + 1;
      }
      store.patchRoom(room.id, changes);
      if (isNewer) this.notifier.message(message, { mentionsMe });
    }
    // After the counts: showing it may mark it read at once.
    store.upsertMessage(message);
  }

  messageUpdated(message) {
    const room = this.store.rooms.get(message.room);
    this.store.upsertMessage(message);
    // A deleted unread message no longer counts; let the server recount.
    if (room && message.deleted && message.id > room.last_read_message_id && room.unread_count > 0) {
      this.refreshRoom(room.id);
    }
  }

  memberChanged(frame) {
    const room = this.store.rooms.get(frame.room);
    if (!room) return;
    const joined = frame.type === "member.joined";
    const changes = { member_count: Math.max(0, (room.member_count || 0) + (joined ? 1 : -1)) };
    if (room.kind === "direct") {
      const others = (room.members ?? []).filter((user) => user.id !== frame.user.id);
      changes.members = joined ? [...others, frame.user] : others;
    }
    this.store.patchRoom(room.id, changes);
    this.store.emit("room", { roomId: room.id });
    this.members.refresh(room.id);
    if (joined) this.askPresence([frame.user.id]);
  }

  /** The read marker moved on another device (or by this page's own request). */
  readElsewhere(roomId, messageId) {
    const room = this.store.rooms.get(roomId);
    if (!room || messageId <= room.last_read_message_id) return;
    if (messageId >= (room.last_message_id ?? 0)) {
      this.store.patchRoom(roomId, { last_read_message_id: messageId, unread_count: 0, mention_count: 0 });
    } else {
      this.store.patchRoom(roomId, { last_read_message_id: messageId });
      this.refreshRoom(roomId);
    }
  }

  async refreshRoom(roomId) {
    try {
      this.store.upsertRoom(await api.get(`rooms/${roomId}/`), { personal: true });
    } catch {
      // Gone or unreachable: the socket will say which.
    }
  }

  /** The user is out of a room; `reason` (room.removed) says why: left, kicked, banned or deleted. */
  removed(roomId, { quiet = false, reason = "left" } = {}) {
    const room = this.store.rooms.get(roomId);
    if (!room) return;
    const label = room.kind === "channel" ? `#${room.name}` : this.store.roomLabel(room);
    const wasOpen = this.store.activeRoomId === roomId;
    this.store.removeRoom(roomId);
    // Being put out is news wherever the user is looking; leaving elsewhere only matters here.
    const notice = {
      banned: `You were banned from ${label}: you cannot join it again unless an owner or admin lifts the ban.`,
      kicked: `You were removed from ${label} by an owner or admin.`,
      deleted: `${label} was deleted.`,
    }[reason];
    if (!quiet && (notice || wasOpen)) toast(notice ?? `You are no longer in ${label}.`);
    if (wasOpen) this.openFallback();
  }

  /** The server closed the socket with 4003: say so, and stop, instead of reconnecting or bouncing to log-in. */
  deactivated() {
    const text = "Your account was deactivated, so this page can no longer send or receive messages.";
    stopRequests(text);
    const notice = $("#account-notice");
    notice.textContent = `${text} If you think this is a mistake, ask the people who run this chat.`;
    notice.hidden = false;
    $("#connection-label").textContent = "Account deactivated";
    $("#composer-input").disabled = true;
    $("#send-button").disabled = true;
    $("#attach-button").disabled = true;
  }

  // --- Read position -------------------------------------------------------------------------

  /** The reader has seen up to `messageId`: move the read marker, on the server too. */
  seen(roomId, messageId) {
    const room = this.store.rooms.get(roomId);
    if (!room || !room.my_role || !document.hasFocus()) return;
    if (messageId <= room.last_read_message_id || (!room.unread_count && !room.mention_count)) return;
    this.store.patchRoom(roomId, { last_read_message_id: messageId, unread_count: 0, mention_count: 0 });
    clearTimeout(this.readTimers.get(roomId));
    this.readTimers.set(
      roomId,
      setTimeout(() => {
        api.post(`rooms/${roomId}/read/`, { message_id: messageId }).catch(() => {
          // Not fatal: the next message seen moves the marker again.
        });
      }, READ_DELAY_MS),
    );
  }

  // --- Presence -------------------------------------------------------------------------------

  /** Ask the server who of these people is online (each once; `again` re-asks after a reconnect). */
  askPresence(userIds, { again = false } = {}) {
    for (const id of userIds) {
      if (id === this.store.me.id) continue;
      if (!again && this.presenceWanted.has(id)) continue;
      this.presenceWanted.add(id);
      this.presenceQueue.add(id);
    }
    if (!this.presenceQueue.size || this.presenceTimer) return;
    // Gather a burst of asks (a history page, a member list) into one request.
    this.presenceTimer = setTimeout(() => this.fetchPresence(), 50);
  }

  async fetchPresence() {
    this.presenceTimer = null;
    const ids = [...this.presenceQueue];
    this.presenceQueue.clear();
    for (let start = 0; start < ids.length; start += PRESENCE_BATCH) {
      const batch = ids.slice(start, start + PRESENCE_BATCH);
      const askedAt = performance.now();
      try {
        const answer = await api.get(`presence/?users=${batch.join(",")}`);
        this.store.applyPresenceSnapshot(batch, answer.online, askedAt);
      } catch {
        // Dots stay as they are; frames keep them current.
      }
    }
  }

  // --- Opening rooms ----------------------------------------------------------------------------

  roomIdFromPath() {
    const match = window.location.pathname.match(/^\/rooms\/(\d+)\/?$/);
    return match ? Number(match[1]) : null;
  }

  async openInitialRoom() {
    // A permalink (/rooms/ID/?message=ID, from "Copy link") opens the conversation at that message.
    const linked = Number(new URLSearchParams(window.location.search).get("message") || 0);
    if (this.roomIdFromPath() && Number.isSafeInteger(linked) && linked > 0) {
      try {
        await this.openAt(await api.get(`messages/${linked}/`));
        return;
      } catch {
        toast("That message does not exist, or you cannot see it.");
      }
    }
    const wanted = this.roomIdFromPath() ?? Number(localStorage.getItem(this.lastRoomKey) || 0);
    if (wanted && (this.store.rooms.has(wanted) || this.roomIdFromPath())) {
      await this.openRoom(wanted, { push: false, replace: true, focus: "composer" });
    } else {
      this.openFallback({ focus: "composer" });
    }
  }

  openFallback(options = {}) {
    const { channels, directs } = this.store.sortedRooms();
    const first = channels[0] ?? directs[0];
    if (first) this.openRoom(first.id, { replace: true, ...options });
    else this.showWelcome();
  }

  showWelcome() {
    this.store.activeRoomId = null;
    $("#room-view").hidden = true;
    $("#welcome").hidden = false;
    this.members.close();
    if (window.location.pathname !== "/") window.history.replaceState({}, "", "/");
    this.sidebar.render();
    this.notifier.updateTitle();
  }

  /** A room made or joined here: show it now, without waiting for the socket's room.added. */
  adopt(room) {
    this.store.upsertRoom(room, { personal: true });
    this.askPresence((room.members ?? []).map((user) => user.id));
    this.openRoom(room.id);
  }

  /** Open a message where it lives: its room at that message, and a reply in its thread beside it. */
  async openAt(message) {
    const inThreadOnly = message.parent && !message.broadcast;
    await this.openRoom(message.room, { around: inThreadOnly ? message.parent : message.id, focus: "none" });
    if (message.parent) await this.thread.open(message.parent, { highlightId: message.id, focus: false });
  }

  /** One side panel at a time: opening one closes the others. */
  sidePanelOpened(opened) {
    for (const panel of [this.thread, this.threads, this.search, this.pins, this.members]) {
      if (panel !== opened) panel.close();
    }
  }

  async openRoom(roomId, { push = true, replace = false, focus = "composer", around = null } = {}) {
    const store = this.store;
    const path = `/rooms/${roomId}/`;
    if (window.location.pathname !== path) {
      if (replace) window.history.replaceState({}, "", path);
      else if (push) window.history.pushState({}, "", path);
    }
    this.closeSidebar();
    const room = store.rooms.get(roomId);
    if (!room || !room.my_role) {
      await this.preview(roomId);
      return;
    }
    store.activeRoomId = roomId;
    localStorage.setItem(this.lastRoomKey, String(roomId));
    this.catchUp.render();
    $("#welcome").hidden = true;
    $("#room-view").hidden = false;
    $("#join-bar").hidden = true;
    $("#composer").hidden = false;
    $("#messages").hidden = false;
    this.renderHeader();
    this.bellMenu.render();
    this.renderTyping();
    this.composer.show(room);
    this.outsiders.render();
    this.members.show(roomId);
    this.sidebar.render();
    this.notifier.updateTitle();
    this.pins.show(roomId);
    if (this.thread.isOpen && this.thread.root?.room !== roomId) this.thread.close();
    const shown = around ? this.timeline.showAround(roomId, around) : this.timeline.show(roomId);
    // Keyboard users land in the message box; on a phone that would pop the keyboard up.
    if (focus === "composer" && window.matchMedia("(min-width: 48rem)").matches) this.composer.focus();
    await shown;
  }

  /** A public channel the user is not in (a shared link): show what it is and offer to join. */
  async preview(roomId) {
    let room;
    try {
      room = await api.get(`rooms/${roomId}/`);
    } catch {
      toast("That room does not exist, or you are not in it.");
      this.openFallback({ focus: "composer" });
      return;
    }
    if (room.my_role) {
      this.adopt(room);
      return;
    }
    this.store.activeRoomId = null;
    this.previewRoom = room;
    $("#welcome").hidden = true;
    $("#room-view").hidden = false;
    $("#messages").hidden = true;
    $("#composer").hidden = true;
    this.members.close();
    this.renderHeader(room);
    $("#join-text").textContent = `You are not in #${room.name} yet (${room.member_count} members). Join to read and post.`;
    $("#join-bar").hidden = false;
    this.sidebar.render();
    $("#join-button").focus();
  }

  // --- The room header, typing line and connection state --------------------------------------

  renderHeader(previewRoom = null) {
    const room = previewRoom ?? this.store.rooms.get(this.store.activeRoomId);
    if (!room) return;
    const isChannel = room.kind === "channel";
    const title = $("#room-title");
    if (isChannel && room.visibility === "private") {
      title.replaceChildren(
        h("span", { class: "icon icon-lock", "aria-hidden": "true" }),
        room.name,
        h("span", { class: "visually-hidden", text: " (private)" }),
      );
    } else {
      title.textContent = isChannel ? `#${room.name}` : this.store.roomLabel(room);
    }
    let topic = room.topic;
    if (!isChannel) {
      const count = (room.members ?? []).length;
      // Display names can be anyone's: the header says whose accounts these are.
      const who = this.store
        .otherMembers(room)
        .map((user) => `@${user.username}`)
        .join(", ");
      topic = `${count > 2 ? `Group conversation · ${count} people` : "Direct message"} · ${who}`;
    }
    $("#room-topic").textContent = topic;
    const member = Boolean(room.my_role);
    $("#members-button").hidden = !member;
    $("#members-button").textContent = `Members (${room.member_count})`;
    $("#leave-button").hidden = !member;
    $("#settings-button").hidden = !(member && isChannel && ["owner", "admin"].includes(room.my_role));
    this.notifier.updateTitle();
  }

  renderTyping() {
    const element = $("#typing");
    const people = this.store.typists(this.store.activeRoomId);
    const names = people.map((user) => user.display_name || user.username);
    if (!names.length) element.textContent = "";
    else if (names.length === 1) element.textContent = `${names[0]} is typing…`;
    else if (names.length === 2) element.textContent = `${names[0]} and ${names[1]} are typing…`;
    else element.textContent = "Several people are typing…";
    // Clear the line when the hints run out, even if nothing else happens.
    clearTimeout(this.typingTimer);
    if (names.length) this.typingTimer = setTimeout(() => this.renderTyping(), 1000);
  }

  renderConnection({ state, retryIn }) {
    // The user's own dot follows this page's connection.
    if (state === "live" || state === "offline" || state === "stopped") {
      this.store.setPresence(this.store.me.id, state === "live");
    }
    const element = $("#connection");
    element.dataset.state = state;
    let label = CONNECTION_LABELS[state] ?? state;
    if (state === "reconnecting" && retryIn > 1500) label = `Reconnecting in ${Math.round(retryIn / 1000)} s…`;
    $("#connection-label").textContent = label;
  }

  // --- Buttons, menus and keys -------------------------------------------------------------------

  wireChrome() {
    const open = {
      create: () => this.createDialog.open(),
      browse: () => this.browseDialog.open(),
      dm: () => this.directDialog.open(),
    };
    $("#create-button").addEventListener("click", open.create);
    $("#browse-button").addEventListener("click", open.browse);
    $("#dm-button").addEventListener("click", open.dm);
    for (const button of document.querySelectorAll("#welcome [data-action]")) {
      button.addEventListener("click", () => open[button.dataset.action]());
    }
    $("#settings-button").addEventListener("click", () => this.settingsDialog.open(this.store.activeRoomId));
    $("#leave-button").addEventListener("click", () => this.leave());
    $("#join-button").addEventListener("click", () => this.join());
    $("#menu-button").addEventListener("click", () => this.toggleSidebar());
    $("#scrim").addEventListener("click", () => this.closeSidebar());
    window.addEventListener("popstate", () => {
      const roomId = this.roomIdFromPath();
      if (roomId) this.openRoom(roomId, { push: false });
    });
    // Coming back to the tab counts as seeing what is on screen.
    const look = () => this.timeline.checkSeen();
    document.addEventListener("visibilitychange", look);
    window.addEventListener("focus", look);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.root.classList.contains("sidebar-open")) this.closeSidebar();
    });
    // A #channel link in a message opens the channel here (a preview to join when you are not in it).
    document.addEventListener("click", (event) => {
      const link = event.target.closest?.("a.channel-link");
      const match = link && (link.getAttribute("href") ?? "").match(CHANNEL_HREF);
      if (!match || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      this.openRoom(Number(match[1]));
    });
  }

  toggleSidebar() {
    const opening = !this.root.classList.contains("sidebar-open");
    this.root.classList.toggle("sidebar-open", opening);
    $("#menu-button").setAttribute("aria-expanded", String(opening));
    $("#scrim").hidden = !opening;
    if (opening) $("#sidebar .room-link.active, #sidebar .room-link, #sidebar button")?.focus();
  }

  closeSidebar() {
    if (!this.root.classList.contains("sidebar-open")) return;
    this.root.classList.remove("sidebar-open");
    $("#menu-button").setAttribute("aria-expanded", "false");
    $("#scrim").hidden = true;
  }

  async leave() {
    const room = this.store.rooms.get(this.store.activeRoomId);
    if (!room) return;
    const label = room.kind === "channel" ? `#${room.name}` : this.store.roomLabel(room);
    const yes = await confirmDialog({
      title: `Leave ${label}?`,
      text:
        room.kind === "channel" && room.visibility === "private"
          ? "It is private: you will need someone to add you again."
          : "You can come back later.",
      action: "Leave",
    });
    if (!yes) return;
    try {
      await api.post(`rooms/${room.id}/leave/`);
      this.removed(room.id, { quiet: true });
    } catch (error) {
      toast(`Could not leave: ${error.message}`);
    }
  }

  async join() {
    const room = this.previewRoom;
    if (!room) return;
    try {
      this.adopt(await api.post(`rooms/${room.id}/join/`));
    } catch (error) {
      toast(`Could not join #${room.name}: ${error.message}`);
    }
  }
}

const root = document.getElementById("app");
if (root) {
  const app = new App(root);
  app.start();
}
