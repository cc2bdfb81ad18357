// Messages on their way to the server: one ordered queue per room, over the socket.
//
// What one person types in one room must be stored in the order typed, so a
// room sends one message at a time: the next goes only once the server has
// answered the one before, with its `message.new` (matched by client_id) or
// an `error` frame naming the client_id. A message that fails holds the ones
// behind it until it is retried or discarded; one that failed for want of a
// connection goes again by itself when the socket is back, still first.
//
// A send whose answer never came (the socket closed under it, or the answer
// is overdue) is settled over REST with the same client_id: the server keeps
// one copy whatever happened and returns it either way.
//
// A message may carry files (attachments.js) still uploading when it is
// queued: it waits for them at its place in the queue, and fails, holding the
// ones behind it, if one of them cannot be uploaded (Retry uploads it again).
//
// Item states (store.pending): queued → sending → (settled, removed) | failed.

import { ApiError, api } from "./api.js";

// Time for the server to answer a send before asking over REST what became of it.
const ANSWER_WITHIN_MS = 10_000;
const NO_CONNECTION = "no connection to the server";

// Error codes (docs/websocket.md) after which the same message may well go through later.
const TRANSIENT_CODES = new Set(["unavailable", "server_error"]);

export class Outbox {
  constructor(store, socket) {
    this.store = store;
    this.socket = socket;
    this.answerTimers = new Map(); // clientId → timer
    this.waitTimers = new Map(); // roomId → timer (rate limited)

    // A message settled, queued, retried or discarded: the room's queue may move on.
    store.addEventListener("pending", (event) => this.pump(event.detail.roomId));
    socket.addEventListener("frame", (event) => {
      if (event.detail.type === "error" && event.detail.client_id) this.refused(event.detail);
    });
    socket.addEventListener("state", (event) => {
      if (event.detail.state !== "live") this.connectionLost();
    });
  }

  /** Queue a message (with its files, uploaded or on their way) behind the room's others and show it at once. */
  enqueue(roomId, clientId, body, files = []) {
    for (const file of files) {
      // A file that finishes (or fails) may let the queue move on.
      file.onSettled = () => this.store.emit("pending", { roomId });
      file.onProgress = () =>
        this.store.emit("upload", { roomId, key: file.key, loaded: file.loaded, total: file.total });
    }
    this.store.addPending(roomId, clientId, body, files);
  }

  /** What to post for a queued item: the same fields over the socket and over REST. */
  static content(item) {
    const content = { body: item.body, client_id: item.clientId };
    if (item.files.length) content.attachments = item.files.map((file) => file.stored.id);
    return content;
  }

  /** Upload again the files of a message that could not be uploaded (when trying again can help). */
  static restartFiles(item) {
    for (const file of item.files) if (file.state === "failed" && file.retryable) file.restart();
  }

  /** Send the room's first message if it is ready to go and nothing is on its way. */
  pump(roomId) {
    const head = this.head(roomId);
    if (!head || head.state !== "queued" || head.notBefore > Date.now()) return;
    const broken = head.files.find((file) => file.state === "failed");
    if (broken) {
      this.fail(head, { error: `${broken.file.name} was not uploaded. ${broken.error}`, retryable: broken.retryable });
      return;
    }
    // Goes once its files are up: each one's news pumps the queue again.
    if (head.files.some((file) => file.state !== "ready")) return;
    const frame = { type: "message.send", room: roomId, ...Outbox.content(head) };
    if (!this.socket.send(frame)) {
      this.fail(head, { error: NO_CONNECTION, retryable: true });
      return;
    }
    this.store.updatePending(roomId, head.clientId, { state: "sending", error: "" });
    this.answerTimers.set(head.clientId, setTimeout(() => this.settleOverRest(head), ANSWER_WITHIN_MS));
  }

  head(roomId) {
    return this.store.pending.get(roomId)?.values().next().value;
  }

  fail(item, { error, retryable }) {
    this.clearTimer(item.clientId);
    this.store.updatePending(item.roomId, item.clientId, { state: "failed", error, retryable });
  }

  clearTimer(clientId) {
    clearTimeout(this.answerTimers.get(clientId));
    this.answerTimers.delete(clientId);
  }

  /** The user asked to try a failed message again. */
  retry(item) {
    if (!navigator.onLine || this.socket.state === "stopped") return;
    Outbox.restartFiles(item);
    if (this.socket.state !== "live") {
      // It goes by itself once connected.
      this.socket.reconnectNow();
      return;
    }
    this.store.updatePending(item.roomId, item.clientId, { state: "queued", error: "", notBefore: 0 });
  }

  /** The socket is live again (after a resume or a reload): pick every room's queue up where it stopped. */
  resume() {
    for (const roomId of [...this.store.pending.keys()]) {
      const head = this.head(roomId);
      if (!head) continue;
      if (head.state === "sending") {
        // Sent on a socket that closed before answering: a replay would have settled it.
        this.settleOverRest(head);
      } else if (head.state === "failed" && head.retryable) {
        Outbox.restartFiles(head);
        this.store.updatePending(roomId, head.clientId, { state: "queued", error: "", notBefore: 0 });
      } else {
        this.pump(roomId);
      }
    }
  }

  connectionLost() {
    // Answers to sends in flight can no longer come on this socket; resume() settles them.
    for (const clientId of [...this.answerTimers.keys()]) this.clearTimer(clientId);
  }

  /** An `error` frame answered one of our sends. */
  refused(frame) {
    const item = this.find(frame.client_id);
    if (!item || item.state !== "sending") return;
    this.clearTimer(item.clientId);
    if (frame.code === "rate_limited") {
      const wait = Math.ceil((Number(frame.retry_after) || 1) * 1000);
      this.store.updatePending(item.roomId, item.clientId, { state: "queued", notBefore: Date.now() + wait });
      clearTimeout(this.waitTimers.get(item.roomId));
      this.waitTimers.set(item.roomId, setTimeout(() => this.pump(item.roomId), wait));
      return;
    }
    const retryable = TRANSIENT_CODES.has(frame.code);
    const error = frame.fields?.body ?? frame.fields?.attachments ?? (retryable ? "the server could not take it just now" : frame.detail);
    this.fail(item, { error, retryable });
  }

  find(clientId) {
    for (const items of this.store.pending.values()) {
      const item = items.get(clientId);
      if (item) return item;
    }
    return null;
  }

  /** Ask the server over REST to store this message (once) and return it. */
  async settleOverRest(item) {
    this.clearTimer(item.clientId);
    if (this.find(item.clientId) !== item) return; // settled meanwhile
    try {
      const message = await api.post(`rooms/${item.roomId}/messages/`, Outbox.content(item));
      this.store.upsertMessage(message);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (this.find(item.clientId) !== item) return;
      const reason = error.status === 0 ? NO_CONNECTION : (error.fields.body ?? error.fields.attachments ?? error.message);
      this.fail(item, { error: reason, retryable: error.retryable });
    }
  }
}
