// Telling the user about new messages: unread counts in the page title, and a
// desktop notification for a direct message or an @mention while the tab is
// in the background (only once the user has allowed notifications).
// The notification button is the opt-in to Web Push: it registers the service
// worker (/sw.js), subscribes this browser with the server's VAPID key and
// hands the subscription to the server, which then notifies while no tab is
// open. "Not now" hides the offer for good (on this browser).

import { api } from "./api.js";
import { $, toast } from "./dom.js";

const BODY_MAX = 180;
const DISMISSED_KEY = "chat.push-offer-dismissed";

function keyBytes(base64url) {
  const padded = base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (ch) => ch.charCodeAt(0));
}

function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** Register the service worker and subscribe this browser; return whether the server has the subscription. */
export async function pushSubscribe() {
  if (!pushSupported()) return false;
  if (Notification.permission !== "granted" && (await Notification.requestPermission()) !== "granted") return false;
  const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
  let subscription = await registration.pushManager.getSubscription();
  if (!subscription) {
    const { public_key: key } = await api.get("push/vapid-key/");
    subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  }
  const { endpoint, keys } = subscription.toJSON();
  await api.post("push/subscriptions/", { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
  return true;
}

/** Unsubscribe this browser, here and on the server. */
export async function pushUnsubscribe() {
  if (!pushSupported()) return;
  const registration = await navigator.serviceWorker.getRegistration("/");
  const subscription = registration && (await registration.pushManager.getSubscription());
  if (!subscription) return;
  await api.delete("push/subscriptions/", { endpoint: subscription.endpoint });
  await subscription.unsubscribe();
}

/** The service worker's registration if this browser is subscribed to pushes, else null. */
async function pushRegistration() {
  if (!pushSupported()) return null;
  try {
    const registration = await navigator.serviceWorker.getRegistration("/");
    return registration && (await registration.pushManager.getSubscription()) ? registration : null;
  } catch {
    return null;
  }
}

/** Whether this browser is subscribed to pushes. */
export async function pushSubscribed() {
  return Boolean(await pushRegistration());
}

export class Notifier {
  constructor(store, { onOpen, icon }) {
    this.store = store;
    this.onOpen = onOpen;
    this.icon = icon;
    this.button = $("#notify-button");
    this.dismissButton = $("#notify-dismiss");
    store.addEventListener("rooms", () => this.updateTitle());
    store.addEventListener("room", () => this.updateTitle());
    this.offerPush();
  }

  async offerPush() {
    if (!pushSupported() || Notification.permission === "denied") return;
    if (await pushSubscribed()) {
      // Keep the server's copy of this browser's subscription current (200 when known).
      pushSubscribe().catch(() => {});
      return;
    }
    if (localStorage.getItem(DISMISSED_KEY)) return;
    try {
      await api.get("push/vapid-key/"); // 404 when the server has no Web Push keys: nothing to offer
    } catch {
      return;
    }
    this.button.hidden = this.dismissButton.hidden = false;
    this.button.addEventListener("click", async () => {
      // Browsers only ask in response to a click, never on page load.
      try {
        await pushSubscribe();
      } catch (error) {
        toast(`Could not turn notifications on: ${error.message}`);
      } finally {
        this.button.hidden = this.dismissButton.hidden = Notification.permission === "default";
      }
    });
    this.dismissButton.addEventListener("click", () => {
      localStorage.setItem(DISMISSED_KEY, "1");
      this.button.hidden = this.dismissButton.hidden = true;
    });
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
    // Through the service worker when this browser gets pushes: same tag as the server's
    // push, so a push that follows replaces this notification instead of adding a second.
    const options = { body, tag: `message-${message.id}`, icon: this.icon, data: { url: `/rooms/${room.id}/` } };
    pushRegistration().then((registration) => {
      if (registration) registration.showNotification(title, options);
      else this.pageNotification(title, options, room);
    });
  }

  pageNotification(title, options, room) {
    try {
      const notification = new Notification(title, options);
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
