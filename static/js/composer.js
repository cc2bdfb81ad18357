// The message box: Enter sends, Shift+Enter is a new line, a message over the
// limit is refused here with the reason shown, and sending is optimistic: the
// message shows at once, tied to a client_id, and joins its room's queue in
// the outbox (outbox.js), which sends in the order typed. A retry reuses the
// client_id, so the server never stores it twice.
//
// Files (attachments.js) join the message being written from the attach
// button, a paste or a drop on the conversation; they upload at once, and the
// message carries their ids through the same queue once they are all up.

import { AttachmentTray } from "./attachments.js";
import { $ } from "./dom.js";

const TYPING_EVERY_MS = 3000;
// Show the remaining characters once this close to the limit.
const COUNT_FROM = 0.9;
// The most files one message may carry (the server refuses more).
const ATTACHMENTS_MAX = 10;

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

export class Composer {
  constructor(store, { socket, outbox, timeline, maxLength, uploadMaxBytes }) {
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

    this.tray = new AttachmentTray({
      list: $("#composer-attachments"),
      status: $("#upload-status"),
      maxBytes: uploadMaxBytes,
      onChange: () => {
        const files = this.tray.summary();
        if (this.fileError && !files.failed && files.count <= ATTACHMENTS_MAX) this.setError("");
      },
    });
    const picker = $("#attach-input");
    $("#attach-button").addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      this.attach([...picker.files]);
      picker.value = "";
    });
    this.input.addEventListener("paste", (event) => this.onPaste(event));
    this.wireDrop($("#room-view"), $("#drop-zone"));
  }

  /** Attach files to the message being written in the open room. */
  attach(files) {
    if (!files.length || this.roomId === undefined || this.form.hidden || this.input.disabled) return;
    this.tray.add(files);
    this.input.focus();
  }

  onPaste(event) {
    const files = [...(event.clipboardData?.files ?? [])];
    if (!files.length) return; // plain text pastes as text
    // Text that came along (a file manager's path, a caption) still pastes; a picture alone does not leave its name.
    if (!event.clipboardData.getData("text/plain")) event.preventDefault();
    const stamp = new Date().toISOString().slice(0, 19).replace("T", " ").replaceAll(":", ".");
    // A pasted screenshot is called "image.png" whatever it shows: give it a name worth keeping.
    this.attach(
      files.map((file) =>
        file.name && file.name !== "image.png"
          ? file
          : new File([file], `Pasted image ${stamp}.${file.type.split("/")[1] || "png"}`, { type: file.type }),
      ),
    );
  }

  /** Files dragged over the conversation show where they would go; dropped, they are attached. */
  wireDrop(area, zone) {
    let depth = 0; // dragenter/leave fire for every child crossed
    const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
    const hide = () => {
      depth = 0;
      zone.hidden = true;
    };
    // A file dropped anywhere else must not make the browser open it in place of the chat (and lose the draft).
    for (const type of ["dragover", "drop"]) {
      window.addEventListener(type, (event) => {
        if (carriesFiles(event)) event.preventDefault();
      });
    }
    area.addEventListener("dragenter", (event) => {
      if (!carriesFiles(event) || this.form.hidden) return;
      event.preventDefault();
      depth += 1;
      zone.hidden = false;
    });
    area.addEventListener("dragover", (event) => {
      if (!carriesFiles(event) || this.form.hidden) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    area.addEventListener("dragleave", () => {
      depth -= 1;
      if (depth <= 0) hide();
    });
    area.addEventListener("drop", (event) => {
      hide();
      const files = [...(event.dataTransfer?.files ?? [])];
      if (!files.length || this.form.hidden) return;
      event.preventDefault();
      this.attach(files);
    });
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
    this.tray.show(room.id);
  }

  focus() {
    this.input.focus();
  }

  setError(text) {
    this.fileError = false;
    this.error.textContent = text;
    this.input.setAttribute("aria-invalid", text ? "true" : "false");
  }

  /** An error about the attached files, cleared once they are put right. */
  setFileError(text) {
    this.setError(text);
    this.fileError = true;
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
    const files = this.tray.summary();
    if (!body && !files.count) return;
    if (files.failed) {
      this.setFileError("A file could not be uploaded: retry it or remove it before sending.");
      return;
    }
    if (files.count > ATTACHMENTS_MAX) {
      const extra = files.count - ATTACHMENTS_MAX;
      this.setFileError(`At most ${ATTACHMENTS_MAX} files go in one message: remove ${extra} and send them in another.`);
      return;
    }
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
    // Files still uploading go with it: the message waits for them in its place in the queue.
    this.outbox.enqueue(this.roomId, newClientId(), body, this.tray.take());
    this.timeline.scrollToBottom();
  }
}
