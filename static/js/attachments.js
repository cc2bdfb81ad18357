// Files in the conversation: uploading them (with progress and cancel), the
// tray of files waiting in the composer, how a message's attachments look
// (image previews, file cards) and the full-size image viewer.
//
// An upload is a multipart POST to rooms/{id}/uploads/ made with
// XMLHttpRequest, the one browser API that reports upload progress. The file
// ids it returns travel with the message through the outbox (outbox.js), so a
// message with files keeps its place in the room's ordered queue like any other.

import { ApiError, csrfToken } from "./api.js";
import { h } from "./dom.js";

// Local previews of files waiting in the tray are data: URLs (the page's CSP
// allows no blob:); past this size a file shows its icon instead.
const LOCAL_PREVIEW_MAX_BYTES = 2 * 1024 * 1024;
// The largest box an inline preview takes in the timeline, in CSS pixels.
const PREVIEW_WIDTH = 320;
const PREVIEW_HEIGHT = 240;

const UNITS = ["bytes", "KB", "MB", "GB"];

/** "1.4 MB": a size for people (powers of 1024, as file managers show them). */
export function formatSize(bytes) {
  let value = Number(bytes) || 0;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return value === 1 ? "1 byte" : `${value} bytes`;
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${UNITS[unit]}`;
}

/** A short type label for a file's icon: "PDF", "ZIP", "MP3"… from its content type, else its name. */
export function typeLabel(file) {
  const known = {
    "application/pdf": "PDF",
    "application/zip": "ZIP",
    "application/gzip": "GZ",
    "application/json": "JSON",
    "text/plain": "TXT",
    "text/csv": "CSV",
  };
  if (known[file.content_type]) return known[file.content_type];
  const extension = /\.([a-z0-9]{1,5})$/i.exec(file.name || "")?.[1];
  if (extension) return extension.toUpperCase();
  const [major] = (file.content_type || "").split("/");
  return { audio: "AUDIO", video: "VIDEO", image: "IMAGE", text: "TEXT" }[major] ?? "FILE";
}

/** The family a file belongs to, for its icon's colour. */
function typeFamily(contentType = "") {
  if (contentType === "application/pdf") return "pdf";
  const major = contentType.split("/")[0];
  if (["image", "audio", "video", "text"].includes(major)) return major;
  if (/zip|tar|gzip|compress|x-7z|rar/.test(contentType)) return "archive";
  return "other";
}

/** Whether a stored file is shown as a picture (the server measured it; a corrupt "image" has no size). */
export function isPicture(file) {
  return file.content_type?.startsWith("image/") && Boolean(file.width && file.height);
}

/** Scale width×height down to fit the inline preview box. */
function fitPreview(width, height) {
  const scale = Math.min(1, PREVIEW_WIDTH / width, PREVIEW_HEIGHT / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

// --- Uploading ------------------------------------------------------------------------------

/** The person cancelled an upload. */
export class UploadCancelled extends Error {}

/**
 * Upload one file to a room: return {promise, cancel}. `promise` resolves to
 * the stored File, or rejects with an ApiError (status 0: no connection) or
 * UploadCancelled. `onProgress(loaded, total)` follows the bytes sent.
 */
export function uploadFile(roomId, file, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", `/api/v1/rooms/${roomId}/uploads/`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.upload.addEventListener("progress", (event) => {
      onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status === 401) {
        // The session ended, as in api.js: back to the log-in page.
        window.location.assign(`/login/?next=${encodeURIComponent(window.location.pathname)}`);
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, null)));
    xhr.addEventListener("abort", () => reject(new UploadCancelled("cancelled")));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { promise, cancel: () => xhr.abort() };
}

/** Say why an upload failed, in words that tell the person what to do. */
export function uploadFailure(error, { maxBytes }) {
  if (!(error instanceof ApiError)) return String(error);
  if (error.status === 0) {
    return navigator.onLine === false
      ? "You are offline. Retry once you are connected again."
      : "Could not reach the server. Check your connection and retry.";
  }
  const detail = error.fields.file ?? error.message;
  if (error.status === 413) {
    // The server names the reason (the size limit or the storage quota); without a body, it is the size.
    return error.body ? detail : `The file is too big: the limit is ${formatSize(maxBytes)}.`;
  }
  if (error.status === 429) return "Too many uploads at once. Wait a moment and retry.";
  if (error.status === 404 || error.status === 403) return "You can no longer post files in this room.";
  return detail;
}

// --- The tray: files waiting in the composer --------------------------------------------------

let trayKeys = 0;

/**
 * The files attached to the message being written, per room: each uploads at
 * once, shows its progress, and can be cancelled, retried or removed.
 * Item states: uploading → ready | failed.
 */
export class AttachmentTray {
  constructor({ list, status, maxBytes, onChange }) {
    this.list = list;
    this.status = status;
    this.maxBytes = maxBytes;
    this.onChange = onChange;
    this.rooms = new Map(); // roomId → Map(key → item)
    this.roomId = null;
  }

  items(roomId = this.roomId) {
    let items = this.rooms.get(roomId);
    if (!items) {
      items = new Map();
      this.rooms.set(roomId, items);
    }
    return items;
  }

  /** Show the tray of a room (each room keeps its own, like its draft). */
  show(roomId) {
    this.roomId = roomId;
    this.render();
  }

  /** Attach files to the open room's message: each starts uploading at once. */
  add(files) {
    for (const file of files) {
      const item = { key: `upload-${++trayKeys}`, roomId: this.roomId, file, loaded: 0, total: file.size };
      item.state = "uploading";
      item.restart = () => this.start(item);
      this.items(item.roomId).set(item.key, item);
      this.element(item);
      if (file.type.startsWith("image/") && file.size <= LOCAL_PREVIEW_MAX_BYTES) this.readPreview(item);
      // Refused here what the server would refuse anyway, without sending a byte.
      if (file.size === 0) this.failed(item, "The file is empty.", { retryable: false });
      else if (file.size > this.maxBytes) {
        const sizes = `${formatSize(file.size)}, the limit is ${formatSize(this.maxBytes)}`;
        this.failed(item, `The file is too big: ${sizes}.`, { retryable: false });
      } else this.start(item);
    }
    this.render();
  }

  readPreview(item) {
    const reader = new FileReader();
    reader.addEventListener("load", () => {
      item.preview = reader.result;
      this.update(item);
    });
    reader.readAsDataURL(item.file);
  }

  start(item) {
    item.state = "uploading";
    item.error = "";
    item.loaded = 0;
    const upload = uploadFile(item.roomId, item.file, (loaded, total) => {
      item.loaded = loaded;
      item.total = total;
      this.update(item);
      item.onProgress?.();
    });
    item.cancel = upload.cancel;
    this.update(item, { rebuild: true });
    upload.promise.then(
      (stored) => {
        item.state = "ready";
        item.stored = stored;
        item.cancel = null;
        this.announce(`${item.file.name} uploaded.`);
        this.update(item, { rebuild: true });
        this.onChange();
        item.onSettled?.();
      },
      (error) => {
        if (error instanceof UploadCancelled) return;
        this.failed(item, uploadFailure(error, { maxBytes: this.maxBytes }), { retryable: true });
      },
    );
    this.onChange();
  }

  failed(item, reason, { retryable }) {
    item.state = "failed";
    item.error = reason;
    item.retryable = retryable;
    item.cancel = null;
    this.announce(`${item.file.name} was not uploaded. ${reason}`);
    this.update(item, { rebuild: true });
    this.onChange();
    item.onSettled?.();
  }

  /** Take a file off the message (cancelling its upload if it is still going). */
  remove(item) {
    const hadFocus = item.element?.contains(document.activeElement);
    item.cancel?.();
    this.items(item.roomId).delete(item.key);
    this.render();
    // Its buttons are gone: keep keyboard users in the message box rather than nowhere.
    if (hadFocus) document.getElementById("composer-input")?.focus();
    this.onChange();
  }

  /** How many files the open room's message has, and how many of them failed. */
  summary(roomId = this.roomId) {
    const items = [...this.items(roomId).values()];
    return { count: items.length, failed: items.filter((item) => item.state === "failed").length };
  }

  /** The message is sent: hand its files over (uploads still going keep going) and empty the tray. */
  take(roomId = this.roomId) {
    const items = [...this.items(roomId).values()];
    this.items(roomId).clear();
    this.render();
    return items;
  }

  announce(text) {
    this.status.textContent = text;
  }

  // --- Drawing ---

  render() {
    const items = [...this.items().values()];
    this.list.replaceChildren(...items.map((item) => this.element(item)));
    this.list.hidden = items.length === 0;
  }

  element(item) {
    if (!item.element) {
      item.element = h("li", { class: "tray-item", dataset: { key: item.key } });
      this.build(item);
    }
    return item.element;
  }

  /** Redraw an item; `rebuild` when its buttons change (a state change), otherwise only the numbers. */
  update(item, { rebuild = false } = {}) {
    if (!item.element) return;
    if (rebuild) {
      const hadFocus = item.element.contains(document.activeElement);
      this.build(item);
      if (hadFocus) item.element.querySelector("button")?.focus();
      return;
    }
    const progress = item.element.querySelector("progress");
    if (progress) {
      progress.max = item.total || 1;
      progress.value = item.loaded;
    }
    const percent = item.total ? Math.floor((100 * item.loaded) / item.total) : 0;
    const status = item.element.querySelector(".tray-status");
    if (item.state === "uploading" && status) status.textContent = `Uploading… ${percent}%`;
    const thumb = item.element.querySelector(".tray-thumb");
    if (item.preview && thumb && thumb.tagName !== "IMG") thumb.replaceWith(this.thumb(item));
  }

  thumb(item) {
    if (item.preview) return h("img", { class: "tray-thumb", src: item.preview, alt: "" });
    const file = { name: item.file.name, content_type: item.file.type };
    return h("span", { class: `tray-thumb file-icon family-${typeFamily(item.file.type)}`, text: typeLabel(file) });
  }

  build(item) {
    const name = item.file.name;
    const parts = [
      this.thumb(item),
      h(
        "span",
        { class: "tray-text" },
        h("span", { class: "tray-name", text: name, title: name }),
        h("span", { class: "tray-size", text: formatSize(item.file.size) }),
      ),
    ];
    if (item.state === "uploading") {
      parts.push(
        h("progress", { class: "tray-progress", max: item.total || 1, value: item.loaded, "aria-label": `Uploading ${name}` }),
        h("span", { class: "tray-status", text: "Uploading… 0%" }),
        h("button", {
          type: "button",
          class: "quiet-button",
          text: "Cancel",
          "aria-label": `Cancel uploading ${name}`,
          onclick: () => this.remove(item),
        }),
      );
    } else if (item.state === "failed") {
      parts.push(
        h("span", { class: "tray-status tray-error", text: `Not uploaded. ${item.error}` }),
        item.retryable
          ? h("button", {
              type: "button",
              class: "quiet-button",
              text: "Retry",
              "aria-label": `Retry uploading ${name}`,
              onclick: () => this.start(item),
            })
          : null,
        h("button", {
          type: "button",
          class: "quiet-button",
          text: "Remove",
          "aria-label": `Remove ${name}`,
          onclick: () => this.remove(item),
        }),
      );
    } else {
      parts.push(
        h("span", { class: "tray-status", text: "Ready" }),
        h("button", {
          type: "button",
          class: "quiet-button",
          text: "Remove",
          "aria-label": `Remove ${name}`,
          onclick: () => this.remove(item),
        }),
      );
    }
    item.element.className = `tray-item ${item.state ?? ""}`;
    item.element.replaceChildren(...parts.filter(Boolean));
    this.update(item);
  }
}

// --- Attachments of a message ------------------------------------------------------------------

/** The files of a message: pictures first as previews, then other files as cards. */
export function attachmentList(message, { onOpenImage }) {
  const files = message.attachments ?? [];
  if (message.deleted || !files.length) return null;
  const pictures = files.filter(isPicture);
  const others = files.filter((file) => !isPicture(file));
  return h(
    "div",
    { class: "attachments" },
    pictures.length
      ? h(
          "ul",
          { class: "attachment-images", "aria-label": "Images" },
          pictures.map((file, index) => h("li", {}, imagePreview(file, () => onOpenImage(pictures, index)))),
        )
      : null,
    others.length
      ? h(
          "ul",
          { class: "attachment-files", "aria-label": "Files" },
          others.map((file) => h("li", {}, fileCard(file))),
        )
      : null,
  );
}

function imagePreview(file, open) {
  const box = fitPreview(file.width, file.height);
  const button = h("button", {
    type: "button",
    class: "image-preview",
    "aria-label": `View ${file.name} full size`,
    title: file.name,
    dataset: { fileId: file.id },
    onclick: open,
  });
  if (file.thumbnail_url) {
    const image = h("img", {
      src: file.thumbnail_url,
      alt: file.name,
      width: box.width,
      height: box.height,
      loading: "lazy",
      decoding: "async",
    });
    // A thumbnail that cannot be shown (its file just went away): keep the box, say what it was.
    image.addEventListener("error", () => image.replaceWith(previewPlaceholder(file, box, "Preview unavailable")));
    button.append(image);
  } else {
    // The thumbnail is being made; message.updated brings it.
    button.append(previewPlaceholder(file, box, "Preparing preview…"));
  }
  return button;
}

function previewPlaceholder(file, box, text) {
  const placeholder = h(
    "span",
    { class: "preview-placeholder", role: "img", "aria-label": `${file.name}: ${text.toLowerCase()}` },
    h("span", { class: "preview-name", text: file.name }),
    h("span", { class: "preview-state", text }),
  );
  placeholder.style.width = `${box.width}px`;
  placeholder.style.height = `${box.height}px`;
  return placeholder;
}

function fileCard(file) {
  const size = formatSize(file.size);
  return h(
    "div",
    { class: "file-card" },
    h("span", {
      class: `file-icon family-${typeFamily(file.content_type)}`,
      "aria-hidden": "true",
      text: typeLabel(file),
    }),
    h(
      "span",
      { class: "file-text" },
      // Opens in a new tab when the browser can show it (the server decides what is safe inline).
      h("a", { class: "file-name", href: file.url, target: "_blank", rel: "noopener", text: file.name, title: file.name }),
      h("span", { class: "file-size", text: `${typeLabel(file)} · ${size}` }),
    ),
    h("a", {
      class: "file-download button-link",
      href: file.url,
      download: file.name,
      "aria-label": `Download ${file.name} (${size})`,
      text: "Download",
    }),
  );
}

// --- The full-size viewer ------------------------------------------------------------------------

/** A modal dialog showing one image at full size; ← and → go through the message's other images. */
export class ImageViewer {
  constructor(dialog) {
    this.dialog = dialog;
    this.title = dialog.querySelector("#viewer-title");
    this.counter = dialog.querySelector("#viewer-count");
    this.image = dialog.querySelector("#viewer-image");
    this.download = dialog.querySelector("#viewer-download");
    this.previous = dialog.querySelector("#viewer-previous");
    this.next = dialog.querySelector("#viewer-next");
    this.files = [];
    this.index = 0;
    this.opener = null;
    dialog.querySelector("#viewer-close").addEventListener("click", () => dialog.close());
    this.previous.addEventListener("click", () => this.go(-1));
    this.next.addEventListener("click", () => this.go(1));
    dialog.addEventListener("keydown", (event) => {
      if (event.key === "ArrowLeft") this.go(-1);
      else if (event.key === "ArrowRight") this.go(1);
    });
    // A click on the backdrop (outside the picture and its bar) closes it, as Escape does.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
    dialog.addEventListener("close", () => {
      this.image.removeAttribute("src");
      // Back to the preview that opened it, so keyboard users keep their place
      // (found again by file id if its message was redrawn meanwhile).
      const fileId = this.opener?.dataset?.fileId;
      const opener = this.opener?.isConnected
        ? this.opener
        : fileId && document.querySelector(`.image-preview[data-file-id="${CSS.escape(fileId)}"]`);
      if (opener) opener.focus();
      else document.getElementById("composer-input")?.focus();
      this.opener = null;
    });
  }

  open(files, index) {
    this.files = files;
    this.opener = document.activeElement;
    this.show(index);
    if (!this.dialog.open) this.dialog.showModal();
    this.dialog.querySelector("#viewer-close").focus();
  }

  go(step) {
    if (this.files.length < 2) return;
    this.show((this.index + step + this.files.length) % this.files.length);
  }

  show(index) {
    this.index = index;
    const file = this.files[index];
    this.title.textContent = file.name;
    this.image.alt = file.name;
    this.image.width = file.width;
    this.image.height = file.height;
    this.image.src = file.url;
    this.download.href = file.url;
    this.download.download = file.name;
    this.download.setAttribute("aria-label", `Download ${file.name} (${formatSize(file.size)})`);
    const several = this.files.length > 1;
    this.counter.textContent = several ? `${index + 1} of ${this.files.length}` : "";
    this.previous.hidden = !several;
    this.next.hidden = !several;
  }
}

let pageViewer = null;

/** The page's one full-size viewer (the dialog #image-viewer), made on first use; the timeline and the side panels share it. */
export function imageViewer() {
  pageViewer ??= new ImageViewer(document.querySelector("#image-viewer"));
  return pageViewer;
}
