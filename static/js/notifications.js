// Notification settings: the bell menu of the open room (level and mute) and the
// settings dialog (push on this browser, email, do-not-disturb, time zone).

import { api } from "./api.js";
import { $, toast } from "./dom.js";
import { pushSubscribe, pushSubscribed, pushUnsubscribe } from "./notify.js";
import { isMuted } from "./store.js";

const LEVEL_LABELS = { all: "all", mentions: "mentions", none: "nothing" };

/** Tomorrow at 08:00, local time. */
function tomorrowMorning() {
  const when = new Date();
  when.setDate(when.getDate() + 1);
  when.setHours(8, 0, 0, 0);
  return when;
}

/** The timestamp a "for…" choice means, null for "off", undefined for "leave as it is". */
function untilFrom(choice, custom) {
  if (choice === "keep") return undefined;
  if (choice === "off") return null;
  if (choice === "tomorrow") return tomorrowMorning().toISOString();
  if (choice === "custom") return custom ? new Date(custom).toISOString() : undefined;
  return new Date(Date.now() + Number(choice) * 1000).toISOString();
}

function wireClose(dialog) {
  for (const button of dialog.querySelectorAll("[data-close]")) button.addEventListener("click", () => dialog.close());
}

export class BellMenu {
  constructor(store) {
    this.store = store;
    this.button = $("#bell-button");
    this.dialog = $("#bell-dialog");
    this.form = $("#bell-form");
    wireClose(this.dialog);
    this.button.addEventListener("click", () => this.open());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    store.addEventListener("room", (event) => {
      if (event.detail.roomId === store.activeRoomId) this.render();
    });
  }

  render() {
    const room = this.store.rooms.get(this.store.activeRoomId);
    this.button.hidden = !room || !room.my_role;
    if (!room) return;
    const level = room.notify_level || (room.kind === "direct" ? "all" : "mentions");
    const label = isMuted(room) && level !== "none" ? "muted" : LEVEL_LABELS[level];
    $("#bell-label").textContent = ` ${label}`;
    this.button.setAttribute("aria-label", `Notifications for this room: ${label}`);
  }

  open() {
    const room = this.store.rooms.get(this.store.activeRoomId);
    if (!room) return;
    const level = room.notify_level || (room.kind === "direct" ? "all" : "mentions");
    for (const radio of this.form.elements.level) radio.checked = radio.value === level;
    $("#bell-mute").value = "keep";
    $("#bell-muted-until").textContent =
      room.muted_until && new Date(room.muted_until) > new Date()
        ? `Muted until ${new Date(room.muted_until).toLocaleString()}.`
        : "Not muted.";
    $("#bell-error").textContent = "";
    this.dialog.showModal();
  }

  async save() {
    const roomId = this.store.activeRoomId;
    const body = { level: this.form.elements.level.value };
    const mutedUntil = untilFrom($("#bell-mute").value);
    if (mutedUntil !== undefined) body.muted_until = mutedUntil;
    try {
      const saved = await api.patch(`rooms/${roomId}/notifications/`, body);
      const room = this.store.rooms.get(roomId);
      if (room) this.store.upsertRoom({ ...room, notify_level: saved.level, muted_until: saved.muted_until }, { personal: true });
      this.dialog.close();
    } catch (error) {
      $("#bell-error").textContent = error.message;
    }
  }
}

export class PreferencesDialog {
  constructor() {
    this.dialog = $("#prefs-dialog");
    this.form = $("#prefs-form");
    wireClose(this.dialog);
    $("#prefs-button").addEventListener("click", () => this.open());
    $("#prefs-dnd").addEventListener("change", () => {
      $("#prefs-dnd-until").hidden = $("#prefs-dnd").value !== "custom";
    });
    $("#prefs-test").addEventListener("click", async () => {
      try {
        const { subscriptions } = await api.post("push/test/");
        toast(subscriptions ? "Test push sent." : "No browser is subscribed to pushes yet.");
      } catch (error) {
        toast(`Could not send a test push: ${error.message}`);
      }
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
  }

  async open() {
    $("#prefs-error").textContent = $("#prefs-timezone-error").textContent = "";
    let prefs;
    try {
      prefs = await api.get("users/me/preferences/");
    } catch (error) {
      toast(`Could not load the notification settings: ${error.message}`);
      return;
    }
    this.prefs = prefs;
    $("#prefs-email").checked = prefs.email;
    const delay = $("#prefs-email-delay");
    if (![...delay.options].some((option) => option.value === String(prefs.email_delay_seconds))) {
      delay.append(new Option(`${prefs.email_delay_seconds} seconds unread`, String(prefs.email_delay_seconds)));
    }
    delay.value = String(prefs.email_delay_seconds);
    $("#prefs-dnd").value = "keep";
    $("#prefs-dnd-until").hidden = true;
    const dnd = prefs.dnd_until && new Date(prefs.dnd_until) > new Date();
    $("#prefs-dnd-state").textContent = dnd ? `On until ${new Date(prefs.dnd_until).toLocaleString()}.` : "Off.";
    $("#prefs-timezone").value = prefs.timezone === "UTC" ? Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" : prefs.timezone;
    const pushBox = $("#prefs-push-browser");
    const supported = "serviceWorker" in navigator && "PushManager" in window;
    pushBox.disabled = !supported;
    pushBox.checked = supported && (await pushSubscribed());
    $("#prefs-push-help").textContent = supported ? "" : "This browser cannot receive push notifications.";
    this.dialog.showModal();
  }

  async save() {
    const body = {
      email: $("#prefs-email").checked,
      email_delay_seconds: Number($("#prefs-email-delay").value),
      timezone: $("#prefs-timezone").value.trim(),
    };
    const dnd = untilFrom($("#prefs-dnd").value, $("#prefs-dnd-until").value);
    if (dnd !== undefined) body.dnd_until = dnd;
    try {
      await api.patch("users/me/preferences/", body);
    } catch (error) {
      const fields = error.fields ?? {};
      $("#prefs-timezone-error").textContent = fields.timezone ?? "";
      $("#prefs-error").textContent = fields.timezone ? "" : error.message;
      return;
    }
    const pushBox = $("#prefs-push-browser");
    try {
      if (!pushBox.disabled) {
        const subscribed = await pushSubscribed();
        if (pushBox.checked && !subscribed && !(await pushSubscribe())) {
          toast("Notifications are blocked for this site in the browser's settings.");
        }
        if (!pushBox.checked && subscribed) await pushUnsubscribe();
      }
    } catch (error) {
      toast(`Could not change push notifications: ${error.message}`);
    }
    this.dialog.close();
  }
}
