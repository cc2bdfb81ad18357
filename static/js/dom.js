// Small DOM helpers. Text always goes in as text (textContent): the only
// HTML ever inserted is a message's server-rendered `html`, and that passes
// through `safeHtml` first.

/**
 * Build an element: h("button", {class: "x", onclick: fn, "aria-label": "…"}, child, "text").
 * `text` sets textContent; `on…` keys add listeners; true/false toggle boolean attributes.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// The server sanitises message HTML with an allow-list (messaging/markdown.py);
// this is the same list again, so a server bug alone cannot run script here.
const ALLOWED = {
  P: [],
  BR: [],
  EM: [],
  STRONG: [],
  S: [],
  CODE: ["class"],
  PRE: [],
  A: ["href", "title"],
  SPAN: ["class", "data-user-id"],
  UL: [],
  OL: ["start"],
  LI: [],
  BLOCKQUOTE: [],
};
const SAFE_URL = /^(https?:|mailto:)/i;
// A #channel link: the channel's page here, opened in this page.
export const CHANNEL_HREF = /^\/rooms\/(\d+)\/$/;

/** Return a fragment holding `html` cut down to the message allow-list. */
export function safeHtml(html) {
  // DOMParser documents are inert: nothing in them runs or loads.
  const parsed = new DOMParser().parseFromString(`<!doctype html><body>${html}`, "text/html");
  const fragment = document.createDocumentFragment();
  for (const node of parsed.body.childNodes) {
    const clean = cleanNode(node);
    if (clean) fragment.append(clean);
  }
  return fragment;
}

function cleanNode(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.data);
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  const allowed = ALLOWED[node.tagName];
  if (!allowed) return document.createTextNode(node.textContent ?? "");
  const element = document.createElement(node.tagName.toLowerCase());
  for (const name of allowed) {
    const value = node.getAttribute(name);
    if (value === null) continue;
    if (name === "href" && !SAFE_URL.test(value.trim()) && !CHANNEL_HREF.test(value)) continue;
    if (name === "class" && node.tagName === "SPAN" && value !== "mention") continue;
    if (name === "class" && node.tagName === "CODE" && !/^language-[\w+#.-]{1,32}$/.test(value)) continue;
    if (name === "start" && !/^\d{1,9}$/.test(value)) continue;
    element.setAttribute(name, value);
  }
  if (element.tagName === "A" && CHANNEL_HREF.test(element.getAttribute("href") ?? "")) {
    element.classList.add("channel-link");
  } else if (element.tagName === "A") {
    element.target = "_blank";
    element.rel = "noopener noreferrer nofollow";
  }
  for (const child of node.childNodes) {
    const clean = cleanNode(child);
    if (clean) element.append(clean);
  }
  return element;
}

/** Whether a message @mentions the user with this id: the server's list says, never the text of its html. */
export function mentionsUser(message, userId) {
  return !message.deleted && Array.isArray(message.mentions) && message.mentions.includes(userId);
}

/** "Display Name (@username)", or "@username" when there is no other name: never a name alone. */
export function userLabel(user) {
  return user.display_name && user.display_name !== user.username
    ? `${user.display_name} (@${user.username})`
    : `@${user.username}`;
}

/** A stable colour class for a person, so the same name always has the same avatar colour. */
export function hueClass(userId) {
  return `hue-${Math.abs(Number(userId) || 0) % 8}`;
}

export function initials(name) {
  const letters = [...(name || "?").trim()];
  return (letters[0] ?? "?").toUpperCase();
}

let toastTimer = null;

/** Show a short status line at the bottom of the screen. */
export function toast(text) {
  const element = document.getElementById("toast");
  if (!element) return;
  element.textContent = text;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    element.hidden = true;
  }, 5000);
}
