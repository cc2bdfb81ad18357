// The one WebSocket to /ws/ that carries every room of the user.
//
// It keeps the highest event_id it has passed on and reconnects with
// ?last_event_id= after any disconnect, so the server replays exactly what
// was missed (docs/websocket.md, "Resuming"). Reconnects back off with jitter, so a
// restarting server is not stampeded by every open tab at once.
//
// Events (EventTarget):
//   "state"  detail {state, retryIn?}   connecting | syncing | live | reconnecting | offline | stopped
//   "ready"  detail {fresh}             fresh: the socket started without a cursor (or after
//                                       resync.required), so the page must reload its state over REST
//   "frame"  detail frame               every frame for the app, in order, duplicates dropped
//   "deactivated"                       the server closed with 4003: the account was deactivated

const PING_EVERY_MS = 25_000;
// A socket that has said nothing (not even a pong) for this long is dead.
const SILENCE_LIMIT_MS = 60_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;

// Close codes the server uses (realtime/consumers.py).
const CLOSE_POLICY = 1008; // a bad cursor: start again without one
const CLOSE_DEACTIVATED = 4003; // the account was deactivated: stop for good

function socketUrl() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/ws/`;
}

export class ChatSocket extends EventTarget {
  constructor(url = socketUrl()) {
    super();
    this.url = url;
    this.ws = null;
    this.cursor = null; // the highest event_id handed to the app
    this.state = "connecting";
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.stopped = false;
    this.failedHandshakes = 0;
  }

  start() {
    // The browser knows before TCP does: drop the socket at once when the
    // network goes, and come back the moment it returns.
    window.addEventListener("offline", () => this.goOffline());
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.state === "reconnecting") this.reconnectNow();
    });
    this.connect();
  }

  /** Send a frame if the socket is live; return whether it went. */
  send(frame) {
    if (this.state !== "live" || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  reconnectNow() {
    if (this.stopped) return;
    this.attempt = 0;
    this.drop();
    this.connect();
  }

  // --- Connection life cycle ----------------------------------------------------------

  connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    if (!navigator.onLine) {
      this.setState("offline");
      return;
    }
    const url = this.cursor === null ? this.url : `${this.url}?last_event_id=${this.cursor}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    this.opened = false;
    this.helloSeen = false;
    this.setState(this.cursor === null ? "connecting" : "reconnecting");
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.opened = true;
      this.failedHandshakes = 0;
      this.lastHeard = Date.now();
      this.startPinging();
    });
    ws.addEventListener("message", (event) => {
      if (ws === this.ws) this.receive(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (ws === this.ws) this.closed(event);
    });
  }

  /** Forget the current socket without reacting to its close. */
  drop() {
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  goOffline() {
    this.drop();
    clearTimeout(this.retryTimer);
    if (!this.stopped) this.setState("offline");
  }

  closed(event) {
    clearInterval(this.pingTimer);
    this.ws = null;
    if (this.stopped) return;
    if (event.code === CLOSE_DEACTIVATED) {
      this.stopped = true;
      this.setState("stopped");
      this.dispatchEvent(new CustomEvent("deactivated"));
      return;
    }
    if (event.code === CLOSE_POLICY) this.cursor = null;
    if (!this.opened) {
      this.failedHandshakes += 1;
      // A refused handshake is most often an ended session; the REST client
      // sends the user to the log-in page when this check answers 401.
      if (this.failedHandshakes >= 2) this.dispatchEvent(new CustomEvent("refused"));
    }
    if (!navigator.onLine) {
      this.setState("offline");
      return;
    }
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.attempt += 1;
    this.setState("reconnecting", { retryIn: delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  startPinging() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
        // Half-open connection (sleep, network change): replace it.
        this.reconnectNow();
        return;
      }
      if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "ping" }));
    }, PING_EVERY_MS);
  }

  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...extra } }));
  }

  // --- Frames ---------------------------------------------------------------------------

  receive(data) {
    this.lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case "hello":
        this.helloSeen = true;
        this.attempt = 0;
        if (this.cursor === null) {
          // No cursor: live events follow at once; the page loads the rest over REST.
          this.cursor = frame.last_event_id;
          this.setState("live");
          this.dispatchEvent(new CustomEvent("ready", { detail: { fresh: true } }));
        } else {
          this.helloId = frame.last_event_id;
          this.setState("syncing");
        }
        return;
      case "resume.done":
        this.cursor = Math.max(this.cursor ?? 0, frame.last_event_id);
        this.setState("live");
        this.dispatchEvent(new CustomEvent("ready", { detail: { fresh: false } }));
        return;
      case "resync.required":
        // The missed events are gone from the server: reload over REST, and
        // continue from the newest event of this connection's hello.
        this.cursor = this.helloId ?? this.cursor;
        this.setState("live");
        this.dispatchEvent(new CustomEvent("ready", { detail: { fresh: true } }));
        return;
      case "pong":
        return;
      default:
        break;
    }
    if (typeof frame.event_id === "number") {
      // Each event exactly once, even if a replay and a live copy overlap.
      if (this.cursor !== null && frame.event_id <= this.cursor) return;
      this.cursor = frame.event_id;
    }
    this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
  }
}
