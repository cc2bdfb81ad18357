"""What a file is, decided from its bytes; images re-encoded clean; thumbnails.

Nothing here trusts the name or the browser's claimed type. Images are
opened with Pillow only in the formats listed, checked against a pixel limit
before their pixels are decoded (a small file can unpack to gigabytes), and
written again without metadata: EXIF (GPS included), XMP and comments go,
and the EXIF orientation is applied to the pixels first.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

THUMBNAIL_MAX = 400
# Pillow decoders allowed; anything else is not an image to us.
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    width: int | None = None
    height: int | None = None
    # For images: the re-encoded bytes to store instead of the upload.
    clean: IO[bytes] | None = None


class ImageTooLarge(Exception):
    """The image has more pixels than IMAGE_MAX_PIXELS."""


def sniff(upload: IO[bytes]) -> Sniffed:
    """Decide the file's type from its bytes; for an image, return it re-encoded without metadata.

    A file that claims to be an image but does not decode (truncated,
    corrupt) is a plain binary file: stored, never shown inline, no thumbnail.
    """
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    if _looks_like_image(head):
        try:
            return _image(upload)
        except ImageTooLarge:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError):
            logger.info("an upload that looked like an image did not decode; stored as a plain file")
            upload.seek(0)
            return Sniffed("application/octet-stream")
    return Sniffed(_content_type_of(head))


def _looks_like_image(head: bytes) -> bool:
    return (
        head.startswith(b"\xff\xd8\xff")
        or head.startswith(b"\x89PNG\r\n\x1a\n")
        or head[:6] in (b"GIF87a", b"GIF89a")
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    )


def _image(upload: IO[bytes]) -> Sniffed:
    with warnings.catch_warnings():
        # Our own pixel limit decides; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(upload, formats=list(IMAGE_FORMATS))
        if image.width * image.height > settings.IMAGE_MAX_PIXELS:
            raise ImageTooLarge(f"{image.width}×{image.height}")
        image_format = image.format or ""
        content_type = IMAGE_FORMATS[image_format]
        clean = io.BytesIO()
        animated = getattr(image, "is_animated", False)
        if animated and image_format in ("GIF", "WEBP"):
            # Frames are kept; these formats carry no EXIF orientation to apply.
            image.save(clean, format=image_format, save_all=True)
            width, height = image.width, image.height
        else:
            image.load()
            upright = ImageOps.exif_transpose(image)
            _save_without_metadata(upright, clean, image_format)
            width, height = upright.width, upright.height
    clean.seek(0)
    return Sniffed(content_type, width, height, clean)


def _save_without_metadata(image: Image.Image, out: IO[bytes], image_format: str) -> None:
    # Only the pixels go across: no exif=, no icc text chunks, no comments.
    image.info.pop("exif", None)
    image.info.pop("comment", None)
    image.info.pop("xmp", None)
    if image_format == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=90, icc_profile=image.info.get("icc_profile"))
    elif image_format == "PNG":
        image.save(out, format="PNG", icc_profile=image.info.get("icc_profile"))
    elif image_format == "GIF":
        image.save(out, format="GIF")
    else:
        image.save(out, format="WEBP", quality=90, icc_profile=image.info.get("icc_profile"))


def _content_type_of(head: bytes) -> str:
    """The type of a non-image from its first bytes: a short list of formats people share, else binary or text."""
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    if head[4:8] == b"ftyp":
        return "audio/mp4" if head[8:11] == b"M4A" else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if b"\x00" in head:
        return "application/octet-stream"
    try:
        # A multi-byte character may be cut at the end of the sample.
        text = head.decode("utf-8") if len(head) < SNIFF_BYTES else head[:-4].decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return "application/octet-stream"
    start = text.lstrip("\ufeff \t\r\n").lower()
    # Markup a browser would render or run: typed as what it is, so it is only ever downloaded.
    if start.startswith("<svg") or ("<svg" in start[:1024] and start.startswith("<?xml")):
        return "image/svg+xml"
    if start.startswith(("<!doctype html", "<html", "<head", "<body", "<script", "<iframe")):
        return "text/html"
    if start.startswith("<?xml"):
        return "application/xml"
    return "text/plain"


def thumbnail(source: IO[bytes]) -> tuple[bytes, str]:
    """Return a WebP of the image at most THUMBNAIL_MAX px on its longer side (the first frame of an animation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(source, formats=list(IMAGE_FORMATS))
        if image.width * image.height > settings.IMAGE_MAX_PIXELS:
            raise ImageTooLarge(f"{image.width}×{image.height}")
        image.seek(0)
        frame = image.convert("RGBA" if _has_alpha(image) else "RGB")
    frame.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX))
    out = io.BytesIO()
    frame.save(out, format="WEBP", quality=80)
    return out.getvalue(), "webp"


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
