"""Dimensions and a small thumbnail of a stored image, computed in a worker thread and bounded: an image whose
header claims more than ``max_pixels`` (or Pillow's own ``MAX_IMAGE_PIXELS``) is refused before any pixel is
decoded (decompression bombs).
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from dataclasses import dataclass
from typing import IO

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from hub.media.blobs import BlobStore, MediaError

__all__ = ["MAX_PIXELS", "THUMBNAIL_SIZE", "ImageFacts", "ImageRefused", "describe_image", "describe_stored_image"]

#: the largest image we decode: 50 megapixels (a phone photo is 12 to 48)
MAX_PIXELS = 50_000_000
#: the thumbnail fits in this box, aspect ratio kept
THUMBNAIL_SIZE = (320, 320)
#: images up to this size are read into memory to be decoded; larger ones go through a temporary file
_SPOOL_BYTES = 4 * 1024 * 1024


class ImageRefused(MediaError):
    """Not an image Pillow can read, or larger than the pixel limit; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFacts:
    """An image's size in pixels (as displayed, EXIF rotation applied) and its thumbnail (WebP bytes)."""

    width: int
    height: int
    thumbnail: bytes
    thumbnail_mime: str = "image/webp"


def describe_image(
    file: IO[bytes], *, max_pixels: int = MAX_PIXELS, thumbnail_size: tuple[int, int] = THUMBNAIL_SIZE
) -> ImageFacts:
    """Read the image in ``file`` (blocking: run it in a thread). ImageRefused when it is not one or too big."""
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    try:
        with Image.open(file) as image:
            width, height = image.size
            if width * height > limit:
                raise ImageRefused(f"{width}x{height} pixels is more than the limit of {limit}")
            if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):  # shown turned a quarter
                width, height = height, width
            image.draft("RGB", thumbnail_size)  # JPEG: decode at a reduced scale when that is enough
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail(thumbnail_size)
            if upright.mode not in ("RGB", "RGBA"):
                alpha = "A" in upright.getbands() or "transparency" in upright.info
                upright = upright.convert("RGBA" if alpha else "RGB")
            out = io.BytesIO()
            upright.save(out, "WEBP", quality=80)
    # Pillow itself warns past MAX_IMAGE_PIXELS (an error where warnings are errors) and refuses twice that
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(str(exc)) from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageRefused(f"cannot decode the image: {exc}") from None
    return ImageFacts(width=width, height=height, thumbnail=out.getvalue())


async def describe_stored_image(
    store: BlobStore, key: str, *, max_pixels: int = MAX_PIXELS, thumbnail_size: tuple[int, int] = THUMBNAIL_SIZE
) -> ImageFacts:
    """``describe_image`` of a stored blob: its bytes are spooled (to disk past a few MiB), then decoded in a
    worker thread, off the event loop."""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        async with await store.open(key) as stream:
            async for chunk in stream:
                await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        return await asyncio.to_thread(describe_image, spool, max_pixels=max_pixels, thumbnail_size=thumbnail_size)
