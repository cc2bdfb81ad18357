// The REST half of the API (/api/v1/), spoken with the session cookie.
// Unsafe methods carry Django's CSRF token, read from the cookie so that a
// token rotated by a log-in in another tab is still the current one.

const BASE = "/api/v1/";
// Set when the account was deactivated: nothing more is asked, and nobody is sent to the log-in page.
let refusedBecause = null;

/** Refuse every further call with `reason` (the account was deactivated under the open page). */
export function stopRequests(reason) {
  refusedBecause = reason;
}

/** An API call that failed: `status` 0 means the server could not be reached. */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }

  /** Field errors of a 400 reply, as {field: "first message"}. */
  get fields() {
    const fields = {};
    if (this.body && typeof this.body === "object" && !("detail" in this.body)) {
      for (const [name, messages] of Object.entries(this.body)) {
        fields[name] = Array.isArray(messages) ? String(messages[0]) : String(messages);
      }
    }
    return fields;
  }

  /** Whether trying again later could help (no connection, server trouble, rate limit). */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

function describe(status, body) {
  if (status === 0) return "Could not reach the server.";
  if (body && typeof body === "object") {
    if (typeof body.detail === "string") return body.detail;
    const first = Object.values(body)[0];
    if (Array.isArray(first) && first.length) return String(first[0]);
    if (typeof first === "string") return first;
  }
  if (status === 429) return "Too many requests; try again in a moment.";
  return `The server answered ${status}.`;
}

export function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

async function request(method, path, body) {
  if (refusedBecause) throw new ApiError(403, { detail: refusedBecause });
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (response.status === 401) {
    // The session ended (logged out elsewhere, expired): back to the log-in page.
    window.location.assign(`/login/?next=${encodeURIComponent(window.location.pathname)}`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body = {}) => request("POST", path, body),
  patch: (path, body) => request("PATCH", path, body),
  put: (path, body) => request("PUT", path, body),
  delete: (path, body) => request("DELETE", path, body),
};
