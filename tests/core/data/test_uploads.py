"""core.data.uploads on real PNG/JPEG bytes made with Pillow: odd modes are handled, bad files refused in one sentence."""
from __future__ import annotations

import io
import tomllib

import numpy as np
import pytest
from PIL import Image

from core.data.images import MAX_PIXELS, to_rgb
from core.data.uploads import EXTENSIONS, FORMATS, MAX_BYTES, MAX_MB, UploadError, load_upload
from tests import REPO
from tests.helpers import png_declaring


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def check_image(array: np.ndarray) -> None:
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8


def one_sentence(message: str) -> None:
    assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message


# ---------------------------------------------------------------------------------------------
# Ordinary and odd modes
# ---------------------------------------------------------------------------------------------

def test_exact_32px_png_is_kept_pixel_for_pixel():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(load_upload(encode(Image.fromarray(pixels))), pixels)


def test_large_rgb_jpeg_is_shrunk():
    image = Image.new("RGB", (3000, 2000), (20, 200, 40))
    out = load_upload(encode(image, "JPEG", quality=95))
    check_image(out)
    assert np.abs(out.astype(int) - (20, 200, 40)).max() <= 6


@pytest.mark.parametrize("mode, colour", [("RGBA", (255, 0, 0, 0)), ("LA", (0, 0))])
def test_fully_transparent_becomes_white(mode, colour):
    out = load_upload(encode(Image.new(mode, (40, 40), colour)))
    check_image(out)
    assert np.all(out == 255)


def test_half_transparent_red_is_composited_on_white():
    out = load_upload(encode(Image.new("RGBA", (32, 32), (255, 0, 0, 128))))
    assert np.abs(out[0, 0].astype(int) - (255, 127, 127)).max() <= 1


def test_big_pictures_are_reduced_before_conversion_with_the_same_colours():
    # Over 4x the model's size, pictures are box-reduced before their mode is converted: colours must not move.
    half_red = Image.new("RGBA", (2000, 1500), (255, 0, 0, 128))
    assert np.abs(load_upload(encode(half_red)).astype(int) - (255, 127, 127)).max() <= 1
    checker = np.indices((800, 1000)).sum(0) % 2 * 2  # indices 0 and 2 alternate; their mean, 1, is green
    palette = Image.fromarray(checker.astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 0, 255, 0, 200, 200, 200] + [0] * 759)
    assert np.abs(load_upload(encode(palette)).astype(int) - 100).max() <= 1  # colours averaged, not indices
    keyed = Image.new("P", (1000, 800), 0)
    keyed.putpalette([10, 20, 30] * 256)
    assert np.all(load_upload(encode(keyed, transparency=0)) == 255)


def test_greyscale_png_and_jpeg():
    assert np.all(load_upload(encode(Image.new("L", (50, 30), 77))) == 77)
    out = load_upload(encode(Image.new("L", (50, 30), 77), "JPEG"))
    assert np.abs(out.astype(int) - 77).max() <= 2


@pytest.mark.parametrize("value, expected", [(65535, 255), (32896, 128), (0, 0)])
def test_sixteen_bit_greyscale_is_scaled_to_eight_bits(value, expected):
    source = Image.fromarray(np.full((40, 40), value, dtype=np.uint16))
    data = encode(source)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # Pillow reads it back as a wide mode
    assert np.all(load_upload(data) == expected)


def test_sixteen_bit_gradient_keeps_its_order():
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))
    out = load_upload(encode(Image.fromarray(ramp)), fit="squash")
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255 and np.all(np.diff(out[0, :, 0].astype(int)) >= 0)


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG", quality=95)  # pure red in CMYK
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = load_upload(data)
    check_image(out)
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 50 and out[..., 2].mean() < 50


def test_palette_png_with_and_without_transparency():
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    palette = rgb.convert("P")
    assert np.array_equal(load_upload(encode(palette)), np.asarray(palette.convert("RGB")))
    transparent = Image.new("P", (32, 32), 0)
    transparent.putpalette([10, 20, 30] * 256)
    assert np.all(load_upload(encode(transparent, transparency=0)) == 255)


def test_one_bit_and_float_images():
    assert np.all(load_upload(encode(Image.new("1", (40, 40), 1))) == 255)
    assert to_rgb(Image.fromarray(np.array([[-1.0, 1.0]], dtype=np.float32))).getpixel((1, 0)) == (255, 255, 255)


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (64, 64), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 32, 64))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down: rotate 180 degrees
    out = load_upload(encode(image, "JPEG", quality=95, exif=exif))
    assert out[:, :12].mean() < 40 and out[:, -12:].mean() > 215  # white is now on the right


def test_crop_keeps_the_middle_and_squash_keeps_everything():
    image = Image.new("RGB", (96, 32), (0, 0, 255))
    image.paste((255, 255, 0), (32, 0, 64, 32))  # the middle third is yellow
    assert np.all(load_upload(encode(image), fit="crop") == (255, 255, 0))
    squashed = load_upload(encode(image), fit="squash")
    assert np.all(squashed[:, 0] == (0, 0, 255)) and np.all(squashed[:, 16] == (255, 255, 0))
    with pytest.raises(ValueError, match="fit must be one of"):
        load_upload(encode(image), fit="stretch")


# ---------------------------------------------------------------------------------------------
# Refused files: one sentence naming the file
# ---------------------------------------------------------------------------------------------

def refusal(data: bytes, name: str = "photo.png") -> str:
    with pytest.raises(UploadError) as info:
        load_upload(data, name)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and message.startswith(name)
    one_sentence(message)
    return message


def test_not_an_image():
    assert "not a PNG or JPEG" in refusal(b"name,value\n1,2\n", "table.csv")
    assert "not a PNG or JPEG" in refusal(encode(Image.new("RGB", (8, 8)), "GIF"), "anim.gif")


def test_empty_file():
    assert "empty" in refusal(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(fmt):
    pixels = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(pixels), fmt)
    assert "damaged or incomplete" in refusal(data[: len(data) // 2], f"cut.{fmt.lower()}")


def test_garbage_after_a_valid_header():
    data = png_declaring(40, 40)[:33] + b"\x00" * 200  # IHDR then junk where the data should be
    refusal(data)


@pytest.mark.parametrize("side", [8000, 100_000])
def test_decompression_bomb_is_refused_before_decoding(side):
    assert side * side > MAX_PIXELS
    data = png_declaring(side, side)
    assert len(data) < 200
    message = refusal(data, "bomb.png")
    assert "million pixels" in message


def test_oversized_upload():
    assert "MB" in refusal(b"\x89PNG" + b"\0" * (MAX_BYTES + 1))


# ---------------------------------------------------------------------------------------------
# One owner of the limits and formats
# ---------------------------------------------------------------------------------------------

def test_the_servers_upload_limit_is_the_one_uploads_checks():
    """config.toml cannot import Python, so the number Streamlit enforces is checked against MAX_MB here."""
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_MB
    assert MAX_BYTES == MAX_MB * 2**20  # Streamlit's megabyte


def test_a_file_just_under_the_limit_is_not_refused_for_its_size():
    padded = encode(Image.new("RGB", (8, 8)), "PNG")
    padded += b"\0" * (MAX_BYTES - len(padded))  # bytes after the picture's end are not read
    check_image(load_upload(padded))


def test_every_file_type_the_upload_box_takes_is_a_format_it_decodes():
    """Each ending is one Pillow reads as one of FORMATS, and each format has a picture that loads."""
    assert set(EXTENSIONS) == {"png", "jpg", "jpeg"}
    known = Image.registered_extensions()
    for fmt, endings in FORMATS.items():
        assert all(known[f".{ending}"] == fmt for ending in endings)
        check_image(load_upload(encode(Image.new("RGB", (40, 40), (10, 20, 30)), fmt), f"photo.{endings[0]}"))
