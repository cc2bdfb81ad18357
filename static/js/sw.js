// The service worker, served at /sw.js so its scope is the whole site.
// It shows the server's Web Push notifications while no tab is looking:
// - {"type": "message", room, message_id, title, body, url}: one notification
//   per message (its tag), so a push delivered twice still shows once;
// - {"type": "dismiss", room, message_id}: read on another device, so close it;
// - {"type": "test", title, body, url}: the settings screen's test push.
// The app badge counts the notifications still shown.

const ICON = "/static/img/favicon.svg";

async function updateBadge() {
  if (!("setAppBadge" in self.navigator)) return;
  const shown = await self.registration.getNotifications();
  if (shown.length) await self.navigator.setAppBadge(shown.length);
  else await self.navigator.clearAppBadge();
}

async function show(data) {
  const tag = data.type === "message" ? `message-${data.message_id}` : `push-${data.type}`;
  await self.registration.showNotification(data.title || "New message", {
    body: data.body || "",
    tag,
    icon: ICON,
    badge: ICON,
    data: { url: data.url || "/", room: data.room ?? null, message_id: data.message_id ?? null },
  });
  await updateBadge();
}

async function dismiss(data) {
  const shown = await self.registration.getNotifications({ tag: `message-${data.message_id}` });
  for (const notification of shown) notification.close();
  await updateBadge();
}

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { type: "message", title: "New message", body: "" };
  }
  event.waitUntil(data.type === "dismiss" ? dismiss(data) : show(data));
});

async function openConversation(url) {
  const target = new URL(url, self.location.origin);
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const same = windows.find((client) => new URL(client.url).pathname === target.pathname);
  if (same) return same.focus();
  const any = windows.find((client) => new URL(client.url).origin === target.origin);
  if (any) {
    await any.focus();
    return any.navigate(target.href);
  }
  return self.clients.openWindow(target.href);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(Promise.all([openConversation(event.notification.data?.url || "/"), updateBadge()]));
});

self.addEventListener("notificationclose", (event) => event.waitUntil(updateBadge()));
