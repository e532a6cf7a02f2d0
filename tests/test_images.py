"""images.py: photos rebuilt from pixels, no metadata left, bombs and garbage withheld."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zlib

import pytest
from PIL import Image as PILImage

from mailbox_processor import anonymise, config, images
from mailbox_processor.models import Parsed, Part, SenderIdentity
from tests import mailfactory as mf


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        chunks.append(data[i + 4 : i + 8])
        i += 12 + length
    return chunks


def assert_nothing_planted(data: bytes) -> None:
    for s in [*mf.PLANTED.strings(), mf.PLANTED.make, mf.PLANTED.gps_text, "GPS", "Exif",
              "xmpmeta", "ICC"]:
        assert s.encode() not in data, s


def test_jpeg_loses_exif_gps_xmp_icc_and_comment() -> None:
    original = mf.photo_jpeg()
    assert b"Exif" in original and mf.PLANTED.serial.encode() in original  # the fixture plants
    img = images.scrub(original, 1)
    assert img.name == "anh-1.jpg" and img.content_type == "image/jpeg"
    markers = mf.jpeg_markers(img.data)
    assert 0xE1 not in markers  # APP1: EXIF and XMP
    assert 0xE2 not in markers  # APP2: ICC profile
    assert 0xFE not in markers  # COM: comment
    assert not any(0xE3 <= m <= 0xEF for m in markers)  # every other APPn
    with PILImage.open(io.BytesIO(img.data)) as out:
        assert len(out.getexif()) == 0
        assert not out.getexif().get_ifd(0x8825)
        assert "icc_profile" not in out.info and "exif" not in out.info
    assert_nothing_planted(img.data)


def test_orientation_is_applied_before_the_tag_is_dropped() -> None:
    img = images.scrub(mf.photo_jpeg(size=(320, 240), orientation=6), 2)
    assert (img.width, img.height) == (240, 320)
    assert img.name == "anh-2.jpg"
    with PILImage.open(io.BytesIO(img.data)) as out:
        assert out.size == (240, 320)


def test_large_photos_are_downscaled_to_2048() -> None:
    img = images.scrub(mf.photo_jpeg(size=(4000, 3000), orientation=1), 1)
    assert (img.width, img.height) == (2048, 1536)


def test_png_with_transparency_stays_png_without_text_or_icc_chunks() -> None:
    img = images.scrub(mf.photo_png_alpha(), 1)
    assert img.name == "anh-1.png" and img.content_type == "image/png"
    chunks = png_chunks(img.data)
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf", b"tIME"):
        assert chunk not in chunks
    with PILImage.open(io.BytesIO(img.data)) as out:
        assert out.mode == "RGBA"
    assert_nothing_planted(img.data)


@pytest.mark.parametrize("maker", [mf.photo_webp, mf.photo_gif])
def test_webp_and_gif_become_clean_jpeg(maker) -> None:
    img = images.scrub(maker(), 1)
    assert img.content_type == "image/jpeg"
    assert 0xE1 not in mf.jpeg_markers(img.data)
    assert_nothing_planted(img.data)


def test_heic_is_decoded_and_cleaned() -> None:
    heic = mf.photo_heic()
    if heic is None:
        pytest.skip("pillow-heif cannot encode HEIC on this machine")
    img = images.scrub(heic, 1)
    assert img.content_type == "image/jpeg"
    assert (img.width, img.height) == (192, 256)  # orientation 6 applied
    assert 0xE1 not in mf.jpeg_markers(img.data)
    assert_nothing_planted(img.data)


def test_the_decompression_bomb_guard_is_set_explicitly() -> None:
    assert PILImage.MAX_IMAGE_PIXELS == images.MAX_PIXELS


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge canvas, with almost no data behind it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 7_000)])
def test_decompression_bombs_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(images.Unreadable):
        images.scrub(bomb_png(*size), 1)


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xe0garbage", b"GIF89a" + b"\0" * 20,
                                  b"%PDF-1.4 not an image", mf.photo_jpeg()[:400]])
def test_undecodable_images_are_refused(data: bytes) -> None:
    with pytest.raises(images.Unreadable):
        images.scrub(data, 1)


def test_a_bad_photo_is_withheld_and_the_good_one_kept(make_config) -> None:
    cfg = config.load(make_config())
    parts = (
        Part("image/png", "bomb.png", bomb_png(100_000, 100_000)),
        Part("image/jpeg", "IMG_0001.JPG", b"\xff\xd8\xff not really"),
        Part("application/octet-stream", "IMG_0002", mf.photo_jpeg()),  # sniffed as JPEG
        Part("image/tiff", "scan.tif", b"II*\0"),  # not an accepted format
    )
    p = Parsed(subject="", text="Ảnh", parts=parts, headers={}, identity=SenderIdentity())
    sub = anonymise.anonymise(p, ref="HT-TEST1", received_on=dt.date(2026, 11, 20),
                              config=cfg, pepper=b"p" * 32)
    assert [i.name for i in sub.images] == ["anh-1.jpg"]
    assert sub.withheld == ("ảnh", "ảnh", "ảnh")
