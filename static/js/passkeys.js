// Passkeys in the account pages: add one (two-factor page), sign in with one
// (log-in page: without a password; code page: as the second factor).
//
// The server speaks WebAuthn options and credentials as JSON with binary
// fields in base64url (docs/api.md#passkeys); this module turns them into
// the ArrayBuffers navigator.credentials wants and back. Each part of a page
// is marked with data-passkey="register" | "login" | "second-factor" and
// stays hidden where the browser has no WebAuthn.

const API = "/api/v1/auth/webauthn/";

function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0)).buffer;
}

function toBase64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body ?? {}),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new Error(describe(data, response.status));
  return data;
}

function describe(data, status) {
  if (data && typeof data === "object") {
    if (typeof data.detail === "string") return data.detail;
    for (const messages of Object.values(data)) {
      if (Array.isArray(messages) && messages.length) return String(messages[0]);
      if (typeof messages === "string") return messages;
    }
  }
  return `The server refused it (${status}).`;
}

function creationOptions(options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    user: { ...options.user, id: fromBase64url(options.user.id) },
    excludeCredentials: (options.excludeCredentials ?? []).map((item) => ({ ...item, id: fromBase64url(item.id) })),
  };
}

function requestOptions(options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    allowCredentials: (options.allowCredentials ?? []).map((item) => ({ ...item, id: fromBase64url(item.id) })),
  };
}

function credentialJSON(credential) {
  const response = credential.response;
  const common = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults?.() ?? {},
    authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
  };
  if (response.attestationObject) {
    return {
      ...common,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        attestationObject: toBase64url(response.attestationObject),
        transports: response.getTransports?.() ?? [],
      },
    };
  }
  return {
    ...common,
    response: {
      clientDataJSON: toBase64url(response.clientDataJSON),
      authenticatorData: toBase64url(response.authenticatorData),
      signature: toBase64url(response.signature),
      userHandle: response.userHandle ? toBase64url(response.userHandle) : null,
    },
  };
}

function showError(part, error) {
  const box = part.querySelector("[data-passkey-error]");
  // The person closing the browser's dialog is no error worth shouting about.
  box.textContent =
    error?.name === "NotAllowedError" ? "The passkey was not used. Try again when you are ready." : error.message;
  box.hidden = false;
}

async function register(part, button) {
  const nameField = part.querySelector("[data-passkey-name]");
  const name = nameField.value.trim();
  if (!name) {
    nameField.setAttribute("aria-invalid", "true");
    nameField.focus();
    throw new Error("Name the passkey first, e.g. the device it is on.");
  }
  const options = await post(`${API}register/options/`);
  const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
  const result = await post(`${API}register/verify/`, { credential: credentialJSON(credential), name });
  if (result.recovery_codes.length === 0) {
    window.location.reload();
    return;
  }
  // The first second factor: its recovery codes, shown this once.
  const codes = part.querySelector("[data-passkey-codes]");
  const list = codes.querySelector("ul");
  list.replaceChildren(
    ...result.recovery_codes.map((code) => {
      const item = document.createElement("li");
      const text = document.createElement("code");
      text.textContent = code;
      item.append(text);
      return item;
    }),
  );
  part.querySelector("[data-passkey-supported]").hidden = true;
  codes.hidden = false;
  codes.querySelector("[data-passkey-done]").addEventListener("click", () => {
    const next = part.dataset.next;
    window.location.assign(next || window.location.pathname);
  });
  button.disabled = true;
}

async function signIn(part) {
  const secondFactor = part.dataset.passkey === "second-factor";
  const body = secondFactor ? { mfa_token: part.dataset.mfaToken } : {};
  const options = await post(`${API}login/options/`, body);
  const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
  const next = new URLSearchParams(window.location.search).get("next") ?? "";
  const target = `/login/passkey/${next ? `?next=${encodeURIComponent(next)}` : ""}`;
  const result = await post(target, { credential: credentialJSON(credential), second_factor: secondFactor });
  window.location.assign(result.next);
}

function start() {
  if (!window.PublicKeyCredential || !navigator.credentials) return;
  for (const part of document.querySelectorAll("[data-passkey]")) {
    const button = part.querySelector("[data-passkey-start]");
    if (!button) continue;
    const shown = part.querySelector("[data-passkey-supported]") ?? part;
    shown.hidden = false;
    button.addEventListener("click", async () => {
      part.querySelector("[data-passkey-error]").hidden = true;
      button.disabled = true;
      try {
        if (part.dataset.passkey === "register") await register(part, button);
        else await signIn(part);
      } catch (error) {
        showError(part, error);
      } finally {
        if (part.querySelector("[data-passkey-codes]")?.hidden !== false) button.disabled = false;
      }
    });
  }
}

start();
