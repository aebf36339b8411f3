"""Uploaded picture files -> the (32, 32, 3) uint8 RGB image a model classifies.

`load_upload(data, name)` accepts PNG and JPEG bytes in any mode Pillow reads and turns them into what
the training images look like: transparency laid on white, 16-bit and other wide grey levels scaled
to 8 bits, CMYK/palette/greyscale made RGB, the camera's rotation applied, the middle square (or the
whole picture, squashed) shrunk to 32x32. Anything it cannot use — not an image, cut off, absurdly
large, an unusual mode — raises `UploadError` with one sentence naming the file and what to do.
The size is checked from the header before any pixel is decoded, so a small file that declares a
huge picture (a decompression bomb) costs nothing.
"""
from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_SIZE = 32
FORMATS = ("PNG", "JPEG")  # what the upload box accepts; Pillow is not asked to try any other decoder
MAX_BYTES = 20 * 2**20  # the dashboard's upload limit (.streamlit/config.toml maxUploadSize)
MAX_PIXELS = 50_000_000  # about 8700x5800: any camera photo, far below what would exhaust memory
FITS = ("crop", "squash")
WHITE = (255, 255, 255)

_ORIENTATION_TAG = 0x0112  # EXIF: how the camera was held


class UploadError(ValueError):
    """An uploaded file that cannot be classified; the message says why in one sentence."""


def load_upload(data: bytes, name: str = "The file", fit: str = "crop") -> np.ndarray:
    """Encoded PNG/JPEG bytes -> (32, 32, 3) uint8 RGB, or UploadError with one sentence.

    fit: "crop" keeps the middle square before shrinking (no distortion, like CIFAR's own photos);
    "squash" shrinks the whole picture to a square, as the data loader does for image folders.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}.")
    if not data:
        raise UploadError(f"{name} is empty; choose a PNG or JPEG picture.")
    if len(data) > MAX_BYTES:
        raise UploadError(f"{name} is {len(data) / 2**20:.0f} MB; pictures up to {MAX_BYTES // 2**20} MB are accepted.")
    image = _open(data, name)
    with image:
        _check_size(image, name)
        orientation = _orientation(image)
        image.draft(image.mode, (2 * IMAGE_SIZE, 2 * IMAGE_SIZE))  # JPEG: decode at 1/2..1/8 scale, much less memory
        _decode(image, name)
        rgb = to_rgb(image, name)
    small = _shrink(rgb, fit)
    if orientation:
        small = small.transpose(orientation)
    return np.asarray(small, dtype=np.uint8).copy()  # (32, 32, 3)


# ---------------------------------------------------------------------------------------------
# Reading: identify, size check, decode
# ---------------------------------------------------------------------------------------------

def _open(data: bytes, name: str) -> Image.Image:
    """Read the header only; nothing is decoded yet."""
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise UploadError(f"{name} declares an enormous picture size; pictures up to "
                          f"{MAX_PIXELS // 1_000_000} million pixels are accepted.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadError(f"{name} is not a PNG or JPEG picture; choose a .png or .jpg image file.") from None


def _check_size(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise UploadError(f"{name} has no pixels ({width}x{height}); choose another picture.")
    if width * height > MAX_PIXELS:
        raise UploadError(f"{name} is {width}x{height} pixels, too large to open safely; pictures up to "
                          f"{MAX_PIXELS // 1_000_000} million pixels are accepted.")


def _decode(image: Image.Image, name: str) -> None:
    """Decode the pixels; a file cut off or corrupted part-way fails here, not later."""
    try:
        image.load()
    except Exception as exc:  # noqa: BLE001 — Pillow raises OSError, SyntaxError, zlib.error, ... for bad data
        log.info("Upload %s failed to decode: %r", name, exc)
        raise UploadError(f"{name} is damaged or incomplete (the picture data ends early or is corrupted); "
                          "save it again and upload the new file.") from None


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """The turn to apply so the picture stands as it was taken (phones store it in EXIF)."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG)
    except Exception:  # noqa: BLE001 — broken EXIF only costs the rotation
        return None
    return {
        2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(value)


# ---------------------------------------------------------------------------------------------
# Modes -> 8-bit RGB
# ---------------------------------------------------------------------------------------------

def to_rgb(image: Image.Image, name: str = "The picture") -> Image.Image:
    """Any mode Pillow decodes -> 8-bit RGB; transparent parts become white (as on a web page)."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode.startswith("I") or mode == "F":
        return _wide_grey_to_rgb(image)
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...
    except (ValueError, OSError):
        raise UploadError(f"{name} uses the colour mode {mode}, which cannot be turned into RGB; "
                          "save it as an ordinary RGB PNG or JPEG.") from None


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer or float greyscale -> 8-bit RGB.

    16-bit files use the full 0..65535 range, so they are scaled by 255/65535; values that fit in
    0..255 already are kept; anything else (floats, negatives) is stretched from its min to its max.
    """
    values = np.asarray(image, dtype=np.float64)  # (H, W)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and 255 < high <= 65535):
        grey = values * (255.0 / 65535.0)
    elif low >= 0 and high <= 255:
        grey = values
    else:
        grey = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    grey8 = np.clip(np.rint(grey), 0, 255).astype(np.uint8)  # (H, W)
    return Image.fromarray(np.repeat(grey8[..., None], 3, axis=2))  # (H, W, 3) RGB


# ---------------------------------------------------------------------------------------------
# Shrinking to 32x32
# ---------------------------------------------------------------------------------------------

def _shrink(image: Image.Image, fit: str) -> Image.Image:
    """The model's input size; bilinear like the data loader (Pillow's bilinear also smooths when shrinking)."""
    if fit == "crop":
        image = ImageOps.fit(image, (IMAGE_SIZE, IMAGE_SIZE), method=Image.Resampling.BILINEAR)
    elif image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return image
