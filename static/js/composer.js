// The message box: Enter sends, Shift+Enter is a new line, a message over the
// limit is refused here with the reason shown, and sending is optimistic: the
// message shows at once, tied to a client_id, and joins its room's queue in
// the outbox (outbox.js), which sends in the order typed. A retry reuses the
// client_id, so the server never stores it twice.

import { $ } from "./dom.js";

const TYPING_EVERY_MS = 3000;
// Show the remaining characters once this close to the limit.
const COUNT_FROM = 0.9;

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

export class Composer {
  constructor(store, { socket, outbox, timeline, maxLength }) {
    this.store = store;
    this.socket = socket;
    this.outbox = outbox;
    this.timeline = timeline;
    this.maxLength = maxLength;
    this.form = $("#composer");
    this.input = $("#composer-input");
    this.error = $("#composer-error");
    this.count = $("#composer-count");
    this.label = $("#composer-label");
    this.lastTypingSent = 0;
    this.drafts = new Map();

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => this.onKey(event));
    this.input.addEventListener("input", () => this.onInput());
  }

  /** Point the composer at a room, keeping each room's unsent draft. */
  show(room) {
    if (this.roomId !== undefined) this.drafts.set(this.roomId, this.input.value);
    this.roomId = room.id;
    const label = room.kind === "channel" ? `Message #${room.name}` : `Message ${this.store.roomLabel(room)}`;
    this.label.textContent = label;
    this.input.placeholder = label;
    this.input.value = this.drafts.get(room.id) ?? "";
    this.setError("");
    this.onInput({ typing: false });
  }

  focus() {
    this.input.focus();
  }

  setError(text) {
    this.error.textContent = text;
    this.input.setAttribute("aria-invalid", text ? "true" : "false");
  }

  onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "ArrowUp" && this.input.value === "") {
      if (this.timeline.editLastOwn()) event.preventDefault();
    }
  }

  onInput({ typing = true } = {}) {
    // Grow with the text, up to the CSS max-height.
    this.input.style.height = "auto";
    this.input.style.height = `${this.input.scrollHeight}px`;
    const length = [...this.input.value.trim()].length;
    if (length > this.maxLength) {
      this.count.textContent = `${length - this.maxLength} characters over the limit of ${this.maxLength}`;
      this.count.classList.add("over");
    } else if (length >= this.maxLength * COUNT_FROM) {
      this.count.textContent = `${this.maxLength - length} characters left`;
      this.count.classList.remove("over");
    } else {
      this.count.textContent = "";
      this.count.classList.remove("over");
    }
    if (length <= this.maxLength && this.error.textContent) this.setError("");
    if (typing && length > 0 && Date.now() - this.lastTypingSent > TYPING_EVERY_MS) {
      // Best effort: a typing hint lost while reconnecting matters to nobody.
      if (this.socket.send({ type: "typing", room: this.roomId })) this.lastTypingSent = Date.now();
    }
  }

  submit() {
    const body = this.input.value.trim();
    if (!body) return;
    // Counted in code points, as the server counts.
    const length = [...body].length;
    if (length > this.maxLength) {
      this.setError(
        `This message is too long to send: ${length} characters, the limit is ${this.maxLength}. ` +
          `Remove ${length - this.maxLength} characters or split it into several messages.`,
      );
      return;
    }
    this.setError("");
    this.input.value = "";
    this.drafts.delete(this.roomId);
    this.onInput({ typing: false });
    this.lastTypingSent = 0;
    this.outbox.enqueue(this.roomId, newClientId(), body);
    this.timeline.scrollToBottom();
  }
}
