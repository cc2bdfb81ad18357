"""File metrics for /metrics: uploads by count and bytes, and how long thumbnails take to appear.

Uploads are counted by the web process that stored them; thumbnails by the
worker that made them (served on JOBS_WORKER_LISTEN, docs/jobs.md).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPLOADS = Counter("chat_file_uploads_total", "Files uploaded and stored, by kind (image or other).", ["kind"])
UPLOAD_BYTES = Counter("chat_file_upload_bytes_total", "Bytes of uploaded files stored, after re-encoding images.")
THUMBNAIL_LATENCY = Histogram(
    "chat_file_thumbnail_latency_seconds",
    "From an image's upload to its thumbnail being stored: the queue's wait plus the job.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
for _kind in ("image", "other"):
    UPLOADS.labels(_kind)


def upload_stored(*, size: int, image: bool) -> None:
    UPLOADS.labels("image" if image else "other").inc()
    UPLOAD_BYTES.inc(size)


def thumbnail_made(seconds: float) -> None:
    THUMBNAIL_LATENCY.observe(max(0.0, seconds))
