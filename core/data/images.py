"""One image decoder for dataset files and uploaded pictures: encoded bytes -> small 8-bit RGB.

Both `core.data` (ImageFolder folders and archives) and `core.data.uploads` (the Gallery's upload box) go
through here, so a picture becomes the same pixels wherever it comes from, and both are protected
the same way:

- `open_image` reads the header only and refuses, before any pixel is decoded, a picture over
  `MAX_PIXELS` (a decompression bomb: a small file that declares a huge size);
- `decode_rgb` decodes it and turns any mode into 8-bit RGB (`to_rgb`), box-reducing big pictures
  first so no full-size float copy is ever made;
- `shrink` makes the model's `IMAGE_SIZE` square; `decode` does all three for a dataset file.

Every refusal is an `ImageError`: one sentence that starts with the file's name, says what was
wrong and what to do. What to do differs between an upload box and a dataset folder, so each caller
passes its own `Policy`.
"""
from __future__ import annotations

import io
import logging
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

IMAGE_SIZE = 32  # the side of every image a model sees
MAX_PIXELS = 50_000_000  # about 8700x5800: any camera photo, far below what would exhaust memory
FITS = ("crop", "squash")
WHITE = (255, 255, 255)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_REDUCIBLE_MODES = ("L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "I", "F")  # what Image.reduce averages


class ImageError(ValueError):
    """A picture that cannot be used; the message is one sentence naming the file."""


class Policy(NamedTuple):
    """What a caller accepts, and what its refusals tell the person to do."""

    formats: tuple[str, ...]  # Pillow format names tried; no other decoder is ever asked
    unreadable: str  # what to do with a file that is none of `formats`
    damaged: str  # ... with a file whose pixel data ends early or is corrupted
    no_pixels: str  # ... with a picture of 0 pixels


def decode(data: bytes, name: str, policy: Policy, size: int = IMAGE_SIZE) -> np.ndarray:
    """Encoded bytes -> (size, size, 3) uint8 RGB, the whole picture squashed; ImageError otherwise."""
    with open_image(data, name, policy) as image:
        rgb = decode_rgb(image, name, policy, size)
    return np.asarray(shrink(rgb, "squash", size), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Reading: header and size check, then the pixels
# ---------------------------------------------------------------------------------------------

def _formats_text(formats: tuple[str, ...]) -> str:
    return formats[0] if len(formats) == 1 else f"{', '.join(formats[:-1])} or {formats[-1]}"


def open_image(data: bytes, name: str, policy: Policy) -> Image.Image:
    """The picture with only its header read, its size checked against MAX_PIXELS; nothing decoded yet."""
    try:
        with warnings.catch_warnings():  # Pillow warns about big sizes; check_size refuses them itself
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=policy.formats)
    except Image.DecompressionBombError:
        raise ImageError(f"{name} declares an enormous picture size; pictures up to "
                         f"{MAX_PIXELS // 1_000_000} million pixels are accepted.") from None
    except Exception:  # noqa: BLE001 — Pillow's plugins raise many types (OSError, SyntaxError, struct.error, ...)
        # Never Pillow's own text: it names the in-memory buffer ("<_io.BytesIO object at 0x...>"), not the file.
        raise ImageError(f"{name} is not a {_formats_text(policy.formats)} picture; {policy.unreadable}.") from None
    try:
        check_size(image, name, policy)
    except ImageError:
        image.close()
        raise
    return image


def check_size(image: Image.Image, name: str, policy: Policy) -> None:
    """Refuse a picture of no pixels or over MAX_PIXELS, from the header's size alone."""
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{name} has no pixels ({width}x{height}); {policy.no_pixels}.")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name} is {width}x{height} pixels, too large to open safely; pictures up to "
                         f"{MAX_PIXELS // 1_000_000} million pixels are accepted.")


def decode_rgb(image: Image.Image, name: str, policy: Policy, size: int = IMAGE_SIZE) -> Image.Image:
    """Decode an opened picture into 8-bit RGB; a big one comes back reduced, its shorter side 2..4x `size`."""
    image.draft(image.mode, (2 * size, 2 * size))  # JPEG: decode at 1/2..1/8 scale, much less memory
    try:
        image.load()  # a file cut off or corrupted part-way fails here, not later
    except Exception as exc:  # noqa: BLE001 — Pillow raises OSError, SyntaxError, zlib.error, ... for bad data
        log.info("%s failed to decode: %r", name, exc)
        raise ImageError(f"{name} is damaged or incomplete (the picture data ends early or is corrupted); "
                         f"{policy.damaged}.") from None
    return to_rgb(image, name, min_side=2 * size)


# ---------------------------------------------------------------------------------------------
# Modes -> 8-bit RGB
# ---------------------------------------------------------------------------------------------

def to_rgb(image: Image.Image, name: str = "The picture", min_side: int | None = None) -> Image.Image:
    """Any mode Pillow decodes -> 8-bit RGB; transparent parts become white (as on a web page).

    min_side: when given, a big picture is first box-reduced by a whole factor (its shorter side
    staying at least min_side), so the conversions below work on a small copy.
    """
    if image.mode.startswith("I") or image.mode == "F":
        return _wide_grey_to_rgb(image, min_side)
    image = _box_reduce(image, min_side)
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...
    except (ValueError, OSError):
        raise ImageError(f"{name} uses the colour mode {image.mode}, which cannot be turned into RGB; "
                         "save it as an ordinary RGB PNG or JPEG.") from None


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def _box_reduce(image: Image.Image, min_side: int | None) -> Image.Image:
    """`image` shrunk by the largest whole factor that keeps its shorter side >= min_side (else unchanged).

    Averages colours, never palette indices or a transparency key, so it is converted to such a mode
    first; like JPEG's draft, this makes the later bilinear shrink cheap whatever the format.
    """
    factor = min(image.size) // min_side if min_side else 0
    if factor < 2:
        return image
    if "transparency" in image.info or image.mode == "PA":
        image = image.convert("RGBA")
    elif image.mode in ("P", "1"):
        image = image.convert("RGB")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    if image.mode not in _REDUCIBLE_MODES:
        return image  # unusual modes (YCbCr, LAB, HSV) stay full size: the pixel cap bounds them
    return image.reduce(factor)


def _grey_scale(sixteen_bit: bool, mode: str, low: float, high: float) -> tuple[float, float]:
    """(scale, offset) taking wide grey values to 0..255.

    16-bit files use the full 0..65535 range, so they are scaled by 255/65535; values that fit in
    0..255 already are kept; anything else (floats, negatives) is stretched from its min to its max.
    """
    if sixteen_bit or (mode == "I" and low >= 0 and 255 < high <= 65535):
        return 255.0 / 65535.0, 0.0
    if low >= 0 and high <= 255:
        return 1.0, 0.0
    if high > low:
        scale = 255.0 / (high - low)
        return scale, -low * scale
    return 0.0, 0.0


def _wide_grey_to_rgb(image: Image.Image, min_side: int | None = None) -> Image.Image:
    """16-bit, 32-bit integer or float greyscale -> 8-bit RGB, in float32 on the reduced picture."""
    sixteen_bit = image.mode.startswith("I;16")
    if image.mode not in ("I", "F"):
        image = image.convert("I")  # getextrema and reduce do not take the 16-bit modes
    low, high = image.getextrema() if image.width and image.height else (0, 0)  # of the whole picture
    scale, offset = _grey_scale(sixteen_bit, image.mode, float(low), float(high))
    values = np.asarray(_box_reduce(image, min_side), dtype=np.float32)  # (h, w)
    grey8 = np.clip(np.rint(values * scale + offset), 0, 255).astype(np.uint8)  # (h, w)
    return Image.fromarray(np.repeat(grey8[..., None], 3, axis=2))  # (h, w, 3) RGB


# ---------------------------------------------------------------------------------------------
# Shrinking to the model's size
# ---------------------------------------------------------------------------------------------

def shrink(image: Image.Image, fit: str = "squash", size: int = IMAGE_SIZE) -> Image.Image:
    """A size x size picture, bilinear (Pillow's bilinear also smooths when shrinking).

    fit: "crop" keeps the middle square (no distortion, like CIFAR's own photos); "squash" shrinks
    the whole picture to a square.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}.")
    if fit == "crop":
        return ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR)
    if image.size != (size, size):
        return image.resize((size, size), Image.Resampling.BILINEAR)
    return image
