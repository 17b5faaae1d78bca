"""Images by their content (PNG, JPEG, WebP, GIF, BMP, TIFF), upright and within a pixel limit.

Pillow reads the format from the bytes; the size is checked from the header before any pixel
is decoded, so a decompression bomb (a small file that unpacks to billions of pixels) is
refused cheaply. A phone photo's EXIF orientation is applied; an animation gives its first frame.
"""

from __future__ import annotations

import io

from agentmill.media.errors import MediaError, MissingEngine

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp",
           "TIFF": "image/tiff", "MPO": "image/jpeg"}  # MPO: a JPEG with extra frames, as some cameras write


def _pillow():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise MissingEngine("Pillow (image decoding)", "pip install pillow") from None
    return Image, ImageOps


def decode_image(data: bytes, *, max_pixels: int | None = None, name: str = "image"):
    """An RGB `PIL.Image` of `data`. A MediaError (naming `name`) for bytes that are not an image
    of a supported format, a corrupt file, or more than `max_pixels` pixels."""
    Image, ImageOps = _pillow()
    if not data:
        raise MediaError(f"{name}: the image is empty")
    try:
        picture = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # Pillow's own guard, at twice its MAX_IMAGE_PIXELS
        raise MediaError(f"{name}: the image has too many pixels to decode safely (the limit is "
                         f"{max_pixels or Image.MAX_IMAGE_PIXELS:,})", code="image_too_large") from None
    except Exception:  # noqa: BLE001 - Pillow raises several kinds for bytes it does not recognise
        raise MediaError(f"{name}: not an image that can be decoded; send PNG, JPEG, WebP, GIF, BMP or TIFF") from None
    if picture.format not in FORMATS:
        raise MediaError(f"{name}: {picture.format} images are not supported; send PNG, JPEG, WebP, GIF, BMP or TIFF")
    width, height = picture.size
    if max_pixels is not None and width * height > max_pixels:
        raise MediaError(f"{name}: the image is {width}x{height} = {width * height:,} pixels, over the limit of "
                         f"{max_pixels:,}", code="image_too_large")
    try:
        picture.seek(0)
        upright = ImageOps.exif_transpose(picture)
        return upright.convert("RGB")
    except Image.DecompressionBombError:
        raise MediaError(f"{name}: the image has too many pixels to decode safely", code="image_too_large") from None
    except Exception as err:  # noqa: BLE001 - truncated or corrupt data surfaces here, when pixels are read
        raise MediaError(f"{name}: the image is corrupt and cannot be decoded ({err})") from None


def image_format(data: bytes) -> str | None:
    """The MIME type of `data` if it is an image of a supported format (header only), else None."""
    Image, _ = _pillow()
    try:
        with Image.open(io.BytesIO(data)) as picture:
            return FORMATS.get(picture.format)
    except Exception:  # noqa: BLE001
        return None
