"""QR codes and posters (issue 6): what a phone reads is exactly the mailto link we built.

Every image is decoded with a real decoder (zxing-cpp); the SVG and the PDF are
rasterised first (cairosvg, pypdfium2), the way a printer or a screen would.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree as ET

import cairosvg
import pypdfium2
import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader

from mailbox_processor import config as config_mod
from mailbox_processor import qr
from mailbox_processor.errors import ConfigError
from tests.conftest import run_cli

ADDRESS = "hopthu@phuong.example.vn"
TDP3_URI = "mailto:hopthu+tdp3@phuong.example.vn?subject=G%C3%B3p%20%C3%BD"
SVG_NS = "{http://www.w3.org/2000/svg}"


def decode(img: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(img.convert("L"))]


def pdf_pages(path: Path, dpi: int = 200) -> list[Image.Image]:
    doc = pypdfium2.PdfDocument(str(path))
    try:
        return [page.render(scale=dpi / 72).to_pil() for page in doc]
    finally:
        doc.close()


def pdf_text(path: Path) -> list[str]:
    return [unicodedata.normalize("NFC", p.extract_text()) for p in PdfReader(path).pages]


def expected_uri(config: Path, slug: str) -> str:
    c = config_mod.load(config)
    location = c.location(slug)
    assert location is not None
    return qr.make_code(c, location).uri


# ----- the mailto builder, against hand-computed strings ----------------------------------


def test_mailto_tags_the_address_and_percent_encodes_the_vietnamese_subject() -> None:
    # ó = U+00F3 = C3 B3, ý = U+00FD = C3 BD in UTF-8; the space is %20, never "+".
    assert qr.mailto(ADDRESS, slug="tdp3", subject="Góp ý") == TDP3_URI


def test_mailto_encodes_plus_ampersand_and_newlines_in_the_body() -> None:
    uri = qr.mailto(ADDRESS, slug="tdp1", subject="", body="a+b & c\r\nđ")
    # "+" as %2B so no decoder reads it as a space; đ = U+0111 = C4 91.
    assert uri == "mailto:hopthu+tdp1@phuong.example.vn?body=a%2Bb%20%26%20c%0D%0A%C4%91"


def test_mailto_keeps_at_literal_and_never_writes_a_plus_for_a_space() -> None:
    uri = qr.mailto(ADDRESS, slug="nvh", subject="Ý kiến về đường sá", body="Gửi @ phường")
    assert "%40" not in uri and uri.count("@") == 2
    assert "+" not in uri.removeprefix("mailto:hopthu+nvh")
    assert uri.isascii()


def test_mailto_gives_the_same_link_for_decomposed_vietnamese() -> None:
    # Some keyboards type tone marks as combining characters; NFC makes one code of both.
    nfd = unicodedata.normalize("NFD", "Góp ý")
    assert nfd != "Góp ý"
    assert qr.mailto(ADDRESS, slug="tdp3", subject=nfd) == TDP3_URI


def test_mailto_subject_and_none_tags() -> None:
    assert qr.mailto(ADDRESS, slug="tdp3", tag="subject", subject="Góp ý") == (
        "mailto:hopthu@phuong.example.vn?subject=G%C3%B3p%20%C3%BD%20%5Btdp3%5D")
    assert qr.mailto(ADDRESS, slug=None, tag="none", subject="Góp ý") == (
        "mailto:hopthu@phuong.example.vn?subject=G%C3%B3p%20%C3%BD")
    assert qr.mailto(ADDRESS, slug="tdp3") == "mailto:hopthu+tdp3@phuong.example.vn"


def test_tags_read_back_from_address_and_subject() -> None:
    assert qr.tag_in_address("hopthu+tdp3@phuong.example.vn") == "tdp3"
    assert qr.tag_in_address("hopthu@phuong.example.vn") is None
    assert qr.tag_in_subject("Góp ý [tdp3]") == "tdp3"
    assert qr.tag_in_subject("Góp ý") is None


@pytest.mark.parametrize("address", ["hop thu@phuong.vn", "hop/thu@phuong.example.vn",
                                     "hopthu@localhost", "hopthu@phường.vn", "hopthu"])
def test_mailto_refuses_what_is_not_a_plain_address(address: str) -> None:
    with pytest.raises(ConfigError, match="not an address"):
        qr.mailto(address, slug="tdp1")


def test_printed_size_limits_the_version() -> None:
    # 1 mm modules at least: 6 cm holds version 10 (57 modules), 5 cm version 8 (49).
    assert qr.max_version(6.0) == 10
    assert qr.max_version(5.0) == 8
    version, matrix = qr.encode(TDP3_URI, "M", 6.0, "test")
    assert len(matrix) == 4 * version + 17 and version <= 5


# ----- one location through the real command ------------------------------------------


@pytest.fixture
def one(make_config: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    config = make_config()
    out = tmp_path / "out"
    result = run_cli(config, "qr", "--location", "tdp3", "--out", str(out), check=True)
    assert result.stderr == ""
    assert sorted(Path(line).name for line in result.stdout.split()) == [
        "tdp3.pdf", "tdp3.png", "tdp3.svg"]
    return config, out


def test_png_decodes_to_exactly_the_link(one: tuple[Path, Path]) -> None:
    config, out = one
    assert decode(Image.open(out / "tdp3.png")) == [TDP3_URI]
    assert expected_uri(config, "tdp3") == TDP3_URI


def test_decoded_link_parses_back_to_address_tag_and_subject(one: tuple[Path, Path]) -> None:
    _, out = one
    [text] = decode(Image.open(out / "tdp3.png"))
    parts = urlsplit(text)
    assert parts.scheme == "mailto"
    address = unquote(parts.path)
    assert address == "hopthu+tdp3@phuong.example.vn"
    assert qr.tag_in_address(address) == "tdp3"
    assert parse_qs(parts.query) == {"subject": ["Góp ý"]}


def test_png_is_300_dpi_6_cm_code_with_white_quiet_zone(one: tuple[Path, Path]) -> None:
    config, out = one
    img = Image.open(out / "tdp3.png").convert("L")
    assert img.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    # The square on top is the code and its quiet zone; the caption is below it.
    square = img.crop((0, 0, img.width, img.width))
    x0, y0, x1, y1 = square.point(lambda v: 255 - v).getbbox()
    assert (x1 - x0) / 300 * 2.54 == pytest.approx(6.0, abs=0.005)
    assert y1 - y0 == x1 - x0
    c = config_mod.load(config)
    module_px = (x1 - x0) / (4 * qr.make_code(c, c.locations[1]).version + 17)
    # Four modules of pure white on every side: nothing else is dark in the square.
    assert min(x0, y0, img.width - x1, img.width - y1) >= 4 * module_px - 1
    assert decode(square) == [TDP3_URI]


def test_png_caption_can_be_left_out(make_config: Callable[..., Path], tmp_path: Path) -> None:
    config = make_config()
    run_cli(config, "qr", "--location", "tdp1", "--no-caption", "--out", str(tmp_path),
            check=True)
    img = Image.open(tmp_path / "tdp1.png")
    assert img.width == img.height
    assert decode(img) == [expected_uri(config, "tdp1")]


def test_svg_is_one_path_and_decodes_when_rasterised(one: tuple[Path, Path]) -> None:
    _, out = one
    data = (out / "tdp3.svg").read_bytes()
    root = ET.fromstring(data)
    assert len(root.findall(f".//{SVG_NS}path")) == 1
    assert root.get("width", "").endswith("mm")
    png = cairosvg.svg2png(bytestring=data, dpi=300)
    assert decode(Image.open(io.BytesIO(png))) == [TDP3_URI]


def test_pdf_poster_decodes_when_rasterised(one: tuple[Path, Path]) -> None:
    _, out = one
    [page] = pdf_pages(out / "tdp3.pdf")
    assert decode(page) == [TDP3_URI]


def test_pdf_poster_is_a4_with_vietnamese_text(one: tuple[Path, Path]) -> None:
    _, out = one
    reader = PdfReader(out / "tdp3.pdf")
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx((595.28, 841.89), abs=0.5)
    [text] = pdf_text(out / "tdp3.pdf")
    for wanted in ("Hòm thư số", "Ủy ban MTTQ phường Ngọc Sơn", "Tổ dân phố 3", "Quét mã",
                   "Viết ý kiến", "Bấm gửi", "hopthu+tdp3@phuong.example.vn", "Bảo mật"):
        assert wanted in text, wanted
    # The font travels inside the PDF, so any printer shows the same diacritics.
    fonts = reader.pages[0]["/Resources"]["/Font"]
    for ref in fonts.values():
        font = ref.get_object()
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
        assert "DejaVu" in font["/BaseFont"] and "/FontFile2" in descriptor
    # Honest wording: the mail provider still knows the sender.
    assert "ẩn danh" not in text.lower()
    assert "vẫn biết" in text


def test_shipped_template_never_promises_anonymity() -> None:
    from importlib.resources import files

    text = files("mailbox_processor.templates").joinpath("poster.txt").read_text("utf-8")
    lines = [line for line in text.splitlines() if ":" in line and not line.startswith(" ")]
    assert lines and all("ẩn danh" not in line.lower() for line in lines)


# ----- --all ----------------------------------------------------------------------------


def test_all_writes_every_location_and_one_pdf_with_a_page_each(
        make_config: Callable[..., Path], tmp_path: Path) -> None:
    locations = [{"slug": f"tdp{n}", "name": f"Tổ dân phố {n}"} for n in range(1, 6)]
    locations.append({"slug": "nvh", "name": "Nhà văn hóa khu phố"})
    config = make_config(locations=locations)
    out = tmp_path / "out"
    result = run_cli(config, "qr", "--all", "--out", str(out), check=True)
    assert "Posters" in result.stderr  # the progress bar (its label, without a terminal)
    for loc in locations:
        assert decode(Image.open(out / f"{loc['slug']}.png")) == [
            expected_uri(config, loc["slug"])]
    pages = pdf_pages(out / "all_posters.pdf", dpi=150)
    texts = pdf_text(out / "all_posters.pdf")
    assert len(pages) == len(texts) == len(locations)
    for loc, page, text in zip(locations, pages, texts, strict=True):
        assert decode(page) == [expected_uri(config, loc["slug"])]
        assert loc["name"] in text


def test_level_q_and_subject_tag_still_decode(make_config: Callable[..., Path],
                                              tmp_path: Path) -> None:
    config = make_config(qr={"tag": "subject", "error_correction": "Q",
                             "subject": "Ý kiến của bà con"})
    run_cli(config, "qr", "--location", "nvh", "--out", str(tmp_path), check=True)
    [text] = decode(Image.open(tmp_path / "nvh.png"))
    parts = urlsplit(text)
    assert parts.path == ADDRESS
    subject = parse_qs(parts.query)["subject"][0]
    assert subject == "Ý kiến của bà con [nvh]"
    assert qr.tag_in_subject(subject) == "nvh"


# ----- a ward's own wording ---------------------------------------------------------------


def test_poster_txt_beside_the_config_replaces_the_wording(
        make_config: Callable[..., Path], tmp_path: Path) -> None:
    config = make_config()
    (config.parent / "poster.txt").write_text(
        "title: Góp ý cho phường\nlocation: {{ location }}\nqr:\n"
        "note: **Bảo mật:** nhà mạng vẫn biết người gửi.\n", encoding="utf-8")
    run_cli(config, "qr", "--location", "tdp1", "--out", str(tmp_path / "o"), check=True)
    [text] = pdf_text(tmp_path / "o" / "tdp1.pdf")
    assert "Góp ý cho phường" in text and "Tổ dân phố 1" in text
    assert "Hòm thư số" not in text


# ----- bad input: one line on stderr, exit 2 ----------------------------------------------


def assert_one_line_error(result, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize(("args", "words"), [
    (["--location", "TDP 1"], ["'TDP 1'", "a-z, 0-9"]),
    (["--location", "tdp_1"], ["'tdp_1'"]),
    (["--location", "tdp9"], ["'tdp9'", "tdp1, tdp3, nvh"]),
    ([], ["--location", "--all"]),
    (["--all", "--location", "tdp1"], ["either"]),
])
def test_bad_location_arguments_exit_2(make_config: Callable[..., Path], tmp_path: Path,
                                       args: list[str], words: list[str]) -> None:
    out = tmp_path / "out"
    result = run_cli(make_config(), "qr", *args, "--out", str(out))
    assert_one_line_error(result, *words)
    assert not out.exists()


@pytest.mark.parametrize(("address", "words"), [
    ("hopthu.phuong.example.vn", ["mailbox.address", "not an e-mail address"]),
    ("hop/thu@phuong.example.vn", ["mailbox.address", "not an address"]),
    ("hopthu+x@phuong.example.vn", ["mailbox.address", "'+'"]),
])
def test_bad_mailbox_address_exits_2(make_config: Callable[..., Path], tmp_path: Path,
                                     address: str, words: list[str]) -> None:
    config = make_config(mailbox={"address": address})
    result = run_cli(config, "qr", "--all", "--out", str(tmp_path / "out"))
    assert_one_line_error(result, *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("qr_section", "words"), [
    # 300 bytes of body: a version 15 code at M, too dense at 6 cm (version 10 at most).
    ({"body": "x" * 300}, ["version", "qr.size_cm = 6", "qr.body"]),
    # 150 bytes need version 15 at H; at L on a 9 cm code they fit (next test).
    ({"body": "x" * 150, "error_correction": "H"}, ["level H", "version"]),
    # 3000 bytes once encoded: more than a version 40 code holds at any level.
    ({"body": "ý" * 500}, ["more than any QR code holds", "level M"]),
])
def test_link_too_long_for_the_level_exits_2(make_config: Callable[..., Path], tmp_path: Path,
                                             qr_section: dict, words: list[str]) -> None:
    config = make_config(qr=qr_section)
    result = run_cli(config, "qr", "--location", "tdp1", "--out", str(tmp_path / "out"))
    assert_one_line_error(result, *words)


def test_the_same_long_body_fits_a_larger_code_at_a_lower_level(
        make_config: Callable[..., Path], tmp_path: Path) -> None:
    config = make_config(qr={"body": "x" * 150, "error_correction": "L", "size_cm": 9.0})
    run_cli(config, "qr", "--location", "tdp1", "--out", str(tmp_path), check=True)
    [text] = decode(Image.open(tmp_path / "tdp1.png"))
    assert parse_qs(urlsplit(text).query)["body"] == ["x" * 150]


def test_out_that_is_a_file_exits_2(make_config: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    result = run_cli(make_config(), "qr", "--location", "tdp1", "--out", str(tmp_path / "taken"))
    assert_one_line_error(result, "--out", "cannot write")


def test_broken_poster_template_exits_2(make_config: Callable[..., Path],
                                        tmp_path: Path) -> None:
    config = make_config()
    (config.parent / "poster.txt").write_text("title: {{ no_such_name }}\nqr:\n", "utf-8")
    result = run_cli(config, "qr", "--location", "tdp1", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "poster.txt", "no_such_name")
    assert not (tmp_path / "o").exists()  # nothing half-made: no PNG without its poster
    (config.parent / "poster.txt").write_text("qr:\ntitle: {% if %}\n", "utf-8")
    result = run_cli(config, "qr", "--location", "tdp1", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "poster.txt line 2")
    (config.parent / "poster.txt").write_text("headline: Góp ý\nqr:\n", "utf-8")
    result = run_cli(config, "qr", "--location", "tdp1", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "poster.txt line 1", "kind")
