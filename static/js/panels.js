// Dialogs and the members panel: create a channel, browse and join public
// channels, start a direct or group conversation, channel settings, the
// member list with add/kick/ban, and a confirmation dialog.
// The dialogs are <dialog> elements in the page; these classes fill and submit them.

import { ApiError, api } from "./api.js";
import { $, h, hueClass, initials, toast, userLabel } from "./dom.js";

const SEARCH_DELAY_MS = 200;

function debounce(fn, delay) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), delay);
  };
}

/** Show field errors of a failed API call next to the fields (ids `${prefix}-${field}-error`). */
function showErrors(prefix, error, fallbackId) {
  for (const element of document.querySelectorAll(`[id^="${prefix}-"][id$="-error"]`)) element.textContent = "";
  const fields = error instanceof ApiError ? error.fields : {};
  let shown = false;
  for (const [field, message] of Object.entries(fields)) {
    const element = document.getElementById(`${prefix}-${field}-error`);
    const input = document.getElementById(`${prefix}-${field}`);
    if (element) {
      element.textContent = message;
      input?.setAttribute("aria-invalid", "true");
      shown = true;
    }
  }
  if (!shown) document.getElementById(fallbackId).textContent = error.message;
}

function clearErrors(prefix) {
  for (const element of document.querySelectorAll(`[id^="${prefix}-"][id$="-error"]`)) element.textContent = "";
  for (const input of document.querySelectorAll(`[id^="${prefix}-"][aria-invalid]`)) {
    input.removeAttribute("aria-invalid");
  }
}

function wireCloseButtons(dialog) {
  for (const button of dialog.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => dialog.close());
  }
}

// --- Confirm -----------------------------------------------------------------------------------

/**
 * Ask a yes/no question in a modal dialog; resolve to true, or to {reason} when asked for one.
 * With `reasonRequired` the dialog cannot be confirmed without a reason.
 */
export function confirmDialog({
  title,
  text,
  action = "Confirm",
  askReason = false,
  reasonRequired = false,
  reasonMax = 500,
}) {
  const dialog = $("#confirm-dialog");
  if (!dialog.dataset.wired) {
    wireCloseButtons(dialog);
    dialog.dataset.wired = "true";
  }
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-button").textContent = action;
  $("#confirm-reason-field").hidden = !askReason;
  const reason = $("#confirm-reason");
  reason.value = "";
  reason.required = askReason && reasonRequired;
  reason.maxLength = reasonMax;
  // A required reason must say something: spaces alone are refused here, not by the server.
  if (reason.required) reason.pattern = ".*\\S.*";
  else reason.removeAttribute("pattern");
  $("#confirm-reason-optional").hidden = reason.required;
  dialog.returnValue = "";
  dialog.showModal();
  $(askReason ? "#confirm-reason" : "#confirm-button").focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const yes = dialog.returnValue === "confirm";
        resolve(yes && askReason ? { reason: $("#confirm-reason").value.trim() } : yes);
      },
      { once: true },
    );
  });
}

// --- Create a channel --------------------------------------------------------------------------------

export class CreateDialog {
  constructor({ store, onCreated }) {
    this.dialog = $("#create-dialog");
    this.form = $("#create-form");
    this.people = $("#create-people");
    // A private channel starts with the people picked here (rooms/ `members`).
    this.chosen = new Map();
    wireCloseButtons(this.dialog);
    this.search = new PeopleSearch({
      input: $("#create-search"),
      results: $("#create-results"),
      action: "Add",
      exclude: () => new Set([store.me.id, ...this.chosen.keys()]),
      onPick: (user) => {
        this.chosen.set(user.id, user);
        this.search.reset();
        this.renderChosen();
        $("#create-search").focus();
      },
    });
    for (const radio of this.form.querySelectorAll('input[name="visibility"]')) {
      radio.addEventListener("change", () => this.showPeople());
    }
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit(onCreated);
    });
  }

  open() {
    this.form.reset();
    clearErrors("create");
    this.chosen.clear();
    this.search.reset();
    this.renderChosen();
    this.showPeople();
    this.dialog.showModal();
    $("#create-name").focus();
  }

  isPrivate() {
    return new FormData(this.form).get("visibility") === "private";
  }

  showPeople() {
    this.people.hidden = !this.isPrivate();
  }

  renderChosen() {
    renderChosenPeople($("#create-chosen"), this.chosen, () => this.renderChosen());
  }

  async submit(onCreated) {
    clearErrors("create");
    const data = new FormData(this.form);
    const name = String(data.get("name") ?? "").trim();
    if (!name) {
      $("#create-name-error").textContent = "Give the channel a name.";
      $("#create-name").setAttribute("aria-invalid", "true");
      $("#create-name").focus();
      return;
    }
    try {
      const room = await api.post("rooms/", {
        name,
        topic: String(data.get("topic") ?? "").trim(),
        visibility: this.isPrivate() ? "private" : "public",
        ...(this.isPrivate() && this.chosen.size ? { members: [...this.chosen.keys()] } : {}),
      });
      this.dialog.close();
      onCreated(room);
    } catch (error) {
      showErrors("create", error, "create-error");
    }
  }
}

// --- Browse public channels ----------------------------------------------------------------------------

export class BrowseDialog {
  constructor({ store, onJoined, onOpen }) {
    this.store = store;
    this.onJoined = onJoined;
    this.onOpen = onOpen;
    this.dialog = $("#browse-dialog");
    this.search = $("#browse-search");
    this.list = $("#browse-list");
    this.more = $("#browse-more");
    this.status = $("#browse-status");
    wireCloseButtons(this.dialog);
    this.search.addEventListener(
      "input",
      debounce(() => this.load(), SEARCH_DELAY_MS),
    );
    this.search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") event.preventDefault();
    });
    this.more.addEventListener("click", () => this.load({ append: true }));
  }

  open() {
    this.search.value = "";
    this.dialog.showModal();
    this.search.focus();
    this.load();
  }

  async load({ append = false } = {}) {
    const query = this.search.value.trim();
    const after = append ? this.lastId : 0;
    this.status.textContent = "Loading…";
    try {
      const page = await api.get(`rooms/public/?q=${encodeURIComponent(query)}&after=${after}&limit=50`);
      if (query !== this.search.value.trim()) return; // a newer search is on its way
      const items = page.results.map((room) => this.item(room));
      if (append) this.list.append(...items);
      else this.list.replaceChildren(...items);
      this.lastId = page.results.at(-1)?.id ?? after;
      this.more.hidden = !page.has_more;
      const shown = this.list.children.length;
      this.status.textContent = shown
        ? ""
        : query
          ? `No public channel matches “${query}”.`
          : "There are no public channels yet. Create the first one!";
    } catch (error) {
      this.status.textContent = `Could not load channels: ${error.message}`;
    }
  }

  item(room) {
    const member = Boolean(room.my_role);
    // A ban keeps the user out until lifted: no Join to offer.
    const barred = !member && room.banned;
    const button = barred
      ? h("span", { class: "browse-banned", text: "You are banned" })
      : h("button", {
          type: "button",
          class: member ? "" : "primary",
          "aria-label": `${member ? "Open" : "Join"} #${room.name}`,
          text: member ? "Open" : "Join",
          onclick: () => (member ? this.openMember(room) : this.join(room, button)),
        });
    return h(
      "li",
      { class: "browse-item" },
      h(
        "div",
        { class: "browse-text" },
        h("strong", { text: `#${room.name}` }),
        h("span", { class: "browse-meta", text: `${room.member_count} member${room.member_count === 1 ? "" : "s"}` }),
        room.topic ? h("p", { class: "browse-topic", text: room.topic }) : null,
      ),
      button,
    );
  }

  openMember(room) {
    this.dialog.close();
    this.onOpen(room.id);
  }

  async join(room, button) {
    button.disabled = true;
    try {
      const joined = await api.post(`rooms/${room.id}/join/`);
      this.dialog.close();
      this.onJoined(joined);
    } catch (error) {
      button.disabled = false;
      this.status.textContent = `Could not join #${room.name}: ${error.message}`;
    }
  }
}

// --- People search (direct messages, adding members) ---------------------------------------------------

/** A search box that lists matching people, each with a button; `exclude` hides some ids. */
class PeopleSearch {
  constructor({ input, results, action, onPick, exclude }) {
    this.input = input;
    this.results = results;
    this.action = action;
    this.onPick = onPick;
    this.exclude = exclude;
    input.addEventListener(
      "input",
      debounce(() => this.load(), SEARCH_DELAY_MS),
    );
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        // Enter picks the first match rather than submitting the form.
        event.preventDefault();
        this.results.querySelector("button")?.click();
      }
    });
  }

  reset() {
    this.input.value = "";
    this.results.replaceChildren();
  }

  async load() {
    const query = this.input.value.trim();
    if (!query) {
      this.results.replaceChildren();
      return;
    }
    try {
      const page = await api.get(`users/?q=${encodeURIComponent(query)}&limit=20`);
      if (query !== this.input.value.trim()) return;
      const excluded = this.exclude();
      const people = page.results.filter((user) => !excluded.has(user.id));
      this.results.replaceChildren(
        ...people.map((user) =>
          h(
            "li",
            { class: "user-result" },
            h("span", { class: `avatar small ${hueClass(user.id)}`, "aria-hidden": "true" }, initials(user.display_name)),
            h("span", { class: "user-name", text: userLabel(user) }),
            h("button", {
              type: "button",
              "aria-label": `${this.action} ${user.display_name || user.username}`,
              text: this.action,
              onclick: () => this.onPick(user),
            }),
          ),
        ),
      );
      if (!people.length) this.results.append(h("li", { class: "user-none", text: `Nobody matches “${query}”.` }));
    } catch (error) {
      this.results.replaceChildren(h("li", { class: "user-none", text: error.message }));
    }
  }
}

/** Show the people picked so far as chips, each with a button that takes the person out again. */
function renderChosenPeople(list, chosen, onChange) {
  list.replaceChildren(
    ...[...chosen.values()].map((user) =>
      h(
        "li",
        { class: "chip" },
        h("span", { text: userLabel(user) }),
        h("button", {
          type: "button",
          class: "icon-button",
          "aria-label": `Remove ${user.display_name || user.username}`,
          text: "×",
          onclick: () => {
            chosen.delete(user.id);
            onChange();
          },
        }),
      ),
    ),
  );
}

export class DirectDialog {
  constructor({ store, onOpened }) {
    this.store = store;
    this.dialog = $("#dm-dialog");
    this.chosenList = $("#dm-chosen");
    this.start = $("#dm-start");
    this.chosen = new Map();
    wireCloseButtons(this.dialog);
    this.search = new PeopleSearch({
      input: $("#dm-search"),
      results: $("#dm-results"),
      action: "Add",
      exclude: () => new Set([store.me.id, ...this.chosen.keys()]),
      onPick: (user) => {
        this.chosen.set(user.id, user);
        this.search.reset();
        this.renderChosen();
        $("#dm-search").focus();
      },
    });
    $("#dm-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!this.chosen.size) return;
      try {
        const room = await api.post("dms/", { users: [...this.chosen.keys()] });
        this.dialog.close();
        onOpened(room);
      } catch (error) {
        $("#dm-error").textContent = error.message;
      }
    });
  }

  open() {
    this.chosen.clear();
    this.search.reset();
    this.renderChosen();
    $("#dm-error").textContent = "";
    this.dialog.showModal();
    $("#dm-search").focus();
  }

  renderChosen() {
    renderChosenPeople(this.chosenList, this.chosen, () => this.renderChosen());
    this.start.disabled = this.chosen.size === 0;
    this.start.textContent = this.chosen.size > 1 ? "Start group conversation" : "Start conversation";
  }
}

// --- Channel settings ----------------------------------------------------------------------------------

export class SettingsDialog {
  constructor({ store, onDeleted }) {
    this.store = store;
    this.dialog = $("#settings-dialog");
    this.form = $("#settings-form");
    wireCloseButtons(this.dialog);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    $("#settings-delete").addEventListener("click", async () => {
      const room = this.store.rooms.get(this.roomId);
      this.dialog.close();
      const yes = await confirmDialog({
        title: `Delete #${room.name}?`,
        text: "The channel and its history go for every member. This cannot be undone.",
        action: "Delete channel",
      });
      if (!yes) return;
      try {
        await api.delete(`rooms/${room.id}/`);
        onDeleted(room.id);
      } catch (error) {
        toast(`Could not delete the channel: ${error.message}`);
      }
    });
  }

  open(roomId) {
    const room = this.store.rooms.get(roomId);
    this.roomId = roomId;
    clearErrors("settings");
    $("#settings-title").textContent = `Settings of #${room.name}`;
    $("#settings-name").value = room.name;
    $("#settings-topic").value = room.topic;
    $("#settings-delete").hidden = room.my_role !== "owner";
    this.dialog.showModal();
    $("#settings-name").focus();
  }

  async save() {
    clearErrors("settings");
    try {
      const room = await api.patch(`rooms/${this.roomId}/`, {
        name: $("#settings-name").value.trim(),
        topic: $("#settings-topic").value.trim(),
      });
      this.store.upsertRoom(room, { personal: true });
      this.dialog.close();
    } catch (error) {
      showErrors("settings", error, "settings-error");
    }
  }
}

// --- Members panel -------------------------------------------------------------------------------------

export class MembersPanel {
  constructor(store, { confirm, askPresence, onNewRoom }) {
    this.store = store;
    this.confirm = confirm;
    this.askPresence = askPresence;
    this.onNewRoom = onNewRoom;
    this.panel = $("#members-panel");
    this.list = $("#member-list");
    this.more = $("#members-more");
    this.button = $("#members-button");
    this.banSection = $("#ban-section");
    this.banList = $("#ban-list");
    this.bansMore = $("#bans-more");
    this.members = new Map();
    this.bans = new Map();
    this.button.addEventListener("click", () => (this.panel.hidden ? this.open() : this.close()));
    $("#members-close").addEventListener("click", () => this.close({ restoreFocus: true }));
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close({ restoreFocus: true });
    });
    this.more.addEventListener("click", () => this.load({ append: true }));
    this.bansMore.addEventListener("click", () => this.loadBans({ append: true }));
    this.search = new PeopleSearch({
      input: $("#member-add-input"),
      results: $("#member-add-results"),
      action: "Add",
      exclude: () => new Set(this.members.keys()),
      onPick: (user) => this.add(user),
    });
    $("#member-add").addEventListener("submit", (event) => event.preventDefault());
    store.addEventListener("presence", () => this.render());
    store.addEventListener("user", ({ detail: { user } }) => {
      const member = this.members.get(user.id);
      if (!member) return;
      member.user = { ...member.user, ...user };
      this.render();
    });
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  open() {
    this.panel.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    this.show(this.store.activeRoomId);
  }

  close({ restoreFocus = false } = {}) {
    this.panel.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    if (restoreFocus) this.button.focus();
  }

  /** Follow the open room while the panel is open. */
  show(roomId) {
    this.roomId = roomId;
    if (!this.isOpen) return;
    const room = this.store.rooms.get(roomId);
    if (!room || !room.my_role) {
      this.close();
      return;
    }
    const canAdd = room.kind === "direct" || ["owner", "admin"].includes(room.my_role);
    $("#member-add").hidden = !canAdd;
    $("#member-add-error").textContent = "";
    this.search.reset();
    this.load();
  }

  /** Reload when someone joins or leaves the room shown. */
  refresh(roomId) {
    if (this.isOpen && roomId === this.roomId) this.load();
  }

  async load({ append = false } = {}) {
    const roomId = this.roomId;
    const after = append ? this.lastUserId : 0;
    try {
      const page = await api.get(`rooms/${roomId}/members/?after=${after}&limit=100`);
      if (roomId !== this.roomId) return;
      if (!append) this.members.clear();
      for (const member of page.results) this.members.set(member.user.id, member);
      this.store.rememberPeople(page.results.map((member) => member.user));
      this.lastUserId = page.results.at(-1)?.user.id ?? after;
      this.more.hidden = !page.has_more;
      this.askPresence(page.results.map((member) => member.user.id));
      this.render();
    } catch (error) {
      this.list.replaceChildren(h("li", { text: `Could not load members: ${error.message}` }));
    }
    if (!append) await this.loadBans();
  }

  /** Whether the user runs this channel, and so sees and lifts its bans. */
  moderates(room) {
    return room?.kind === "channel" && ["owner", "admin"].includes(room.my_role);
  }

  async loadBans({ append = false } = {}) {
    const roomId = this.roomId;
    if (!this.moderates(this.store.rooms.get(roomId))) {
      this.banSection.hidden = true;
      this.bans.clear();
      return;
    }
    const after = append ? this.lastBannedId : 0;
    try {
      const page = await api.get(`rooms/${roomId}/bans/?after=${after}&limit=100`);
      if (roomId !== this.roomId) return;
      if (!append) this.bans.clear();
      for (const ban of page.results) this.bans.set(ban.user.id, ban);
      this.lastBannedId = page.results.at(-1)?.user.id ?? after;
      this.bansMore.hidden = !page.has_more;
      this.renderBans();
    } catch (error) {
      this.banSection.hidden = false;
      this.banList.replaceChildren(h("li", { text: `Could not load bans: ${error.message}` }));
    }
  }

  renderBans() {
    this.banSection.hidden = false;
    const bans = [...this.bans.values()];
    $("#ban-empty").hidden = bans.length > 0;
    this.banList.replaceChildren(
      ...bans.map((ban) => {
        const user = ban.user;
        const name = user.display_name || user.username;
        const by = ban.banned_by ? ` by @${ban.banned_by.username}` : "";
        return h(
          "li",
          { class: "member" },
          h("span", { class: `avatar small ${hueClass(user.id)}`, "aria-hidden": "true" }, initials(name)),
          h(
            "span",
            { class: "member-text" },
            h("span", { class: "member-name", text: name }),
            h("span", { class: "member-meta", text: `@${user.username} · banned${by}` }),
            ban.reason ? h("span", { class: "member-meta", text: `Reason: ${ban.reason}` }) : null,
          ),
          h(
            "span",
            { class: "member-actions" },
            h("button", {
              type: "button",
              class: "quiet-button",
              text: "Lift ban",
              "aria-label": `Lift the ban on ${name} (@${user.username})`,
              onclick: () => this.unban(user),
            }),
          ),
        );
      }),
    );
  }

  async unban(user) {
    const name = user.display_name || user.username;
    try {
      await api.delete(`rooms/${this.roomId}/bans/${user.id}/`);
      toast(`The ban on ${name} is lifted: they may join again.`);
      this.loadBans();
    } catch (error) {
      toast(`Could not lift the ban on ${name}: ${error.message}`);
    }
  }

  render() {
    if (!this.isOpen) return;
    const room = this.store.rooms.get(this.roomId);
    if (!room) return;
    const rank = { owner: 0, admin: 1, member: 2 };
    const members = [...this.members.values()].sort(
      (a, b) =>
        rank[a.role] - rank[b.role] ||
        (a.user.display_name || a.user.username).localeCompare(b.user.display_name || b.user.username),
    );
    this.list.replaceChildren(...members.map((member) => this.item(room, member)));
  }

  item(room, member) {
    const me = this.store.me.id;
    const user = member.user;
    const name = user.display_name || user.username;
    const online = user.id === me || this.store.online.has(user.id);
    const myRole = room.my_role;
    const isChannel = room.kind === "channel";
    // Owners act on anyone but themselves; admins on plain members (rooms/services.py).
    const canAct =
      isChannel && user.id !== me && (myRole === "owner" || (myRole === "admin" && member.role === "member"));
    const actions = [];
    if (canAct) {
      if (myRole === "owner" && member.role !== "owner") {
        const promote = member.role === "member";
        actions.push(
          h("button", {
            type: "button",
            class: "quiet-button",
            text: promote ? "Make admin" : "Make member",
            "aria-label": `${promote ? "Make" : "Unmake"} ${name} admin`,
            onclick: () => this.setRole(user, promote ? "admin" : "member"),
          }),
        );
      }
      actions.push(
        h("button", {
          type: "button",
          class: "quiet-button",
          text: "Kick",
          "aria-label": `Kick ${name}`,
          onclick: () => this.kick(room, user),
        }),
        h("button", {
          type: "button",
          class: "quiet-button danger-text",
          text: "Ban",
          "aria-label": `Ban ${name}`,
          onclick: () => this.ban(room, user),
        }),
      );
    }
    return h(
      "li",
      { class: "member" },
      h(
        "span",
        { class: `avatar small ${hueClass(user.id)}${online ? " online" : ""}`, "aria-hidden": "true" },
        initials(name),
      ),
      h(
        "span",
        { class: "member-text" },
        h("span", { class: "member-name", text: user.id === me ? `${name} (you)` : name }),
        h("span", {
          class: "member-meta",
          text: `@${user.username}${member.role !== "member" && isChannel ? ` · ${member.role}` : ""} · ${online ? "online" : "offline"}`,
        }),
      ),
      actions.length ? h("span", { class: "member-actions" }, actions) : null,
    );
  }

  async add(user) {
    $("#member-add-error").textContent = "";
    try {
      const reply = await api.post(`rooms/${this.roomId}/members/`, { user: user.id });
      this.search.reset();
      if (reply.kind) {
        // A 1:1 conversation stays between its two people: the server opened a group one instead.
        toast(`Started a group conversation with ${user.display_name || user.username}.`);
        this.close();
        this.onNewRoom(reply);
        return;
      }
      toast(`${user.display_name || user.username} was added.`);
      this.load();
    } catch (error) {
      $("#member-add-error").textContent = error.message;
    }
  }

  async setRole(user, role) {
    try {
      await api.patch(`rooms/${this.roomId}/members/${user.id}/`, { role });
      this.load();
    } catch (error) {
      toast(error.message);
    }
  }

  async kick(room, user) {
    const name = user.display_name || user.username;
    const yes = await this.confirm({
      title: `Kick ${name}?`,
      text: `${name} leaves #${room.name} now, and may join again.`,
      action: "Kick",
    });
    if (!yes) return;
    try {
      await api.delete(`rooms/${room.id}/members/${user.id}/`);
      this.load();
    } catch (error) {
      toast(`Could not kick ${name}: ${error.message}`);
    }
  }

  async ban(room, user) {
    const name = user.display_name || user.username;
    const answer = await this.confirm({
      title: `Ban ${name}?`,
      text: `${name} leaves #${room.name} now and cannot join again.`,
      action: "Ban",
      askReason: true,
    });
    if (!answer) return;
    try {
      await api.post(`rooms/${room.id}/bans/`, { user: user.id, reason: answer.reason });
      this.load();
    } catch (error) {
      toast(`Could not ban ${name}: ${error.message}`);
    }
  }
}
