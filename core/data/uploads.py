"""Uploaded picture files -> the (32, 32, 3) uint8 RGB image a model classifies.

`load_upload(data, name)` accepts PNG and JPEG bytes in any mode Pillow reads and turns them into what
the training images look like: transparency laid on white, 16-bit and other wide grey levels scaled
to 8 bits, CMYK/palette/greyscale made RGB, the camera's rotation applied, the middle square (or the
whole picture, squashed) shrunk to 32x32. Anything it cannot use — not an image, cut off, absurdly
large, an unusual mode — raises `UploadError` with one sentence naming the file and what to do.
The decoding itself is `core.data.images`, shared with the dataset loader: the size is checked from the
header before any pixel is decoded, so a small file that declares a huge picture (a decompression
bomb) costs nothing.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from core.data.images import FITS, ImageError, Policy, decode_rgb, open_image, shrink

# The one owner of what an upload may be: the Gallery's upload box takes its file types and words from here.
MAX_MB = 20  # the largest upload; .streamlit/config.toml maxUploadSize must say the same (a test checks)
MAX_BYTES = MAX_MB * 2**20  # (Streamlit's megabyte is 2**20 bytes)
# Pillow's format name -> the file-name endings of that format, the usual one first
FORMATS: dict[str, tuple[str, ...]] = {"PNG": ("png",), "JPEG": ("jpg", "jpeg")}
EXTENSIONS = tuple(ending for endings in FORMATS.values() for ending in endings)  # the upload box's file types
FORMAT_WORDS = " or ".join(FORMATS)  # "PNG or JPEG", for labels and refusals
UPLOADS = Policy(
    formats=tuple(FORMATS),  # Pillow is not asked to try any other decoder
    unreadable=f"choose a {' or '.join('.' + endings[0] for endings in FORMATS.values())} image file",
    damaged="save it again and upload the new file",
    no_pixels="choose another picture",
)

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
        raise UploadError(f"{name} is empty; choose a {FORMAT_WORDS} picture.")
    if len(data) > MAX_BYTES:
        raise UploadError(f"{name} is {len(data) / 2**20:.0f} MB; pictures up to {MAX_MB} MB are accepted.")
    try:
        with open_image(data, name, UPLOADS) as image:
            orientation = _orientation(image)  # EXIF is in the header: no pixels decoded yet
            rgb = decode_rgb(image, name, UPLOADS)
    except ImageError as exc:
        raise UploadError(str(exc)) from None
    small = shrink(rgb, fit)
    if orientation:
        small = small.transpose(orientation)
    return np.asarray(small, dtype=np.uint8).copy()  # (32, 32, 3)


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
