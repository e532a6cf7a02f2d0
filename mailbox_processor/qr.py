"""QR codes and printable posters: config.locations → mailto: URI → PNG, SVG, A4 PDF.

The code is how citizens reach the mailbox, so everything here leans towards
"scans on any phone": an ASCII-only payload (RFC 6068 percent-encoding), the
location in the address itself (some Android mail apps drop the subject), a
version small enough for the printed size, and the quiet zone always kept.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree as ET

import jinja2
import qrcode
import qrcode.exceptions
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont
from qrcode.image.svg import SvgPathFillImage

from .config import SLUG_RE, Config, Location
from .errors import ConfigError

# A matrix of modules, True = dark, without the quiet zone.
Matrix = tuple[tuple[bool, ...], ...]

LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
QUIET_ZONE = 4  # modules of white on each side: the minimum ISO/IEC 18004 asks for
# At arm's length (~40 cm) a phone's preview frame (≈1920 px across ≈50 cm)
# gives a 1 mm module about 4 pixels, which every decoder handles; below that
# people must bring the phone close, which a poster behind glass prevents.
MIN_MODULE_MM = 1.0
# Local parts we can put in a mailto: URI without escaping and that every mail
# app accepts; anything fancier is more likely a typo than a real mailbox.
LOCAL_RE = re.compile(r"^[A-Za-z0-9._-]+(\+[A-Za-z0-9._-]+)?$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$")
TAG_RE = re.compile(r"\[([a-z0-9-]+)\]\s*$")
# Unreserved characters stay as they are; "@" too because some scanners reject
# %40. Everything else is UTF-8 percent-encoded: a space as %20 (iOS Mail shows
# a "+" literally), and "+" itself as %2B so form decoders cannot turn it into a space.
HFVALUE_SAFE = "@"
A4_MM = (210.0, 297.0)
POSTER_CODE_CM = (8.0, 12.0)  # the code on a poster: at least, at most (size_cm in between)
POSTER_TEMPLATE = "poster.txt"
ALL_POSTERS = "all_posters.pdf"  # "_" is never in a slug, so no location's file has this name
PROGRESS_FROM = 5  # locations; fewer finish before a bar would be worth reading


@dataclass(frozen=True)
class Code:
    """One location's QR code: what it says and its modules."""

    location: Location
    address: str  # the address in the URI, with its plus tag if any
    uri: str
    version: int
    level: str
    matrix: Matrix

    @property
    def modules(self) -> int:
        return len(self.matrix)


@dataclass(frozen=True)
class Block:
    """One line of the poster template: its kind and its text."""

    kind: str
    text: str


# ----- mailto -------------------------------------------------------------------------


def mailto(address: str, *, slug: str | None = None, tag: str = "plus",
           subject: str = "", body: str = "") -> str:
    """The RFC 6068 URI a location's code holds.

    tag = "plus" puts the slug in the address (hopthu+tdp1@…), "subject" appends
    "[tdp1]" to the subject, "none" leaves the location out.
    """
    if tag not in ("plus", "subject", "none"):
        raise ConfigError(f"qr.tag must be \"plus\", \"subject\" or \"none\", not {tag!r}")
    to = tagged_address(address, slug if tag == "plus" else None)
    if tag == "subject" and slug:
        subject = f"{subject} [{slug}]".strip()
    fields = [(k, v) for k, v in (("subject", subject), ("body", body)) if v]
    query = "&".join(f"{k}={_hfvalue(v)}" for k, v in fields)
    return f"mailto:{to}" + (f"?{query}" if query else "")


def tagged_address(address: str, slug: str | None) -> str:
    """address with "+slug" after the local part; the address is checked on the way."""
    local, domain = _split_address(address)
    if slug is None:
        return f"{local}@{domain}"
    _check_slug(slug, "slug")
    if "+" in local:
        raise ConfigError(
            f"mailbox.address {address!r} already has a '+' tag; with qr.tag = \"plus\" "
            "give the plain address (or set qr.tag = \"subject\")"
        )
    return f"{local}+{slug}@{domain}"


def tag_in_address(address: str) -> str | None:
    """The slug a plus-tagged recipient carries (hopthu+tdp1@… → "tdp1"), for intake."""
    local = address.rpartition("@")[0]
    _, plus, tag = local.partition("+")
    tag = tag.lower()
    return tag if plus and SLUG_RE.match(tag) else None


def tag_in_subject(subject: str) -> str | None:
    """The slug a subject-tagged mail carries ("Góp ý [tdp1]" → "tdp1"), for intake."""
    m = TAG_RE.search(subject)
    return m.group(1) if m else None


def _hfvalue(value: str) -> str:
    # NFC so the same words always give the same bytes (and the same code).
    return quote(unicodedata.normalize("NFC", value), safe=HFVALUE_SAFE)


def _split_address(address: str) -> tuple[str, str]:
    local, at, domain = address.strip().rpartition("@")
    if not at or not LOCAL_RE.match(local) or not DOMAIN_RE.match(domain):
        raise ConfigError(
            f"mailbox.address {address!r} is not an address a QR code can carry "
            "(expected name@domain.vn with letters, digits, '.', '_' or '-')"
        )
    return local, domain.lower()


def _check_slug(slug: str, where: str) -> None:
    if not SLUG_RE.match(slug):
        raise ConfigError(f"{where} {slug!r} must use only a-z, 0-9 and '-'")


# ----- the code -----------------------------------------------------------------------


def max_version(size_cm: float) -> int:
    """The largest QR version whose modules stay ≥ MIN_MODULE_MM when the code is size_cm wide."""
    modules = math.floor(size_cm * 10 / MIN_MODULE_MM)
    return min(40, (modules - 17) // 4)


def encode(uri: str, level: str, size_cm: float, where: str) -> tuple[int, Matrix]:
    """(version, modules) for uri, or a ConfigError saying what to shorten."""
    qr = _qrcode(uri, level, border=0)
    limit = max_version(size_cm)
    try:
        qr.make(fit=True)
    # qrcode 8 reports overflow as ValueError("Invalid version (was 41 ...)"),
    # older releases as DataOverflowError: both mean "no version holds it".
    except (qrcode.exceptions.DataOverflowError, ValueError):
        raise ConfigError(
            f"{where}: the link is {len(uri)} bytes, more than any QR code holds at level "
            f"{level}; shorten qr.subject or qr.body"
        ) from None
    if qr.version > limit:
        raise ConfigError(
            f"{where}: the link is {len(uri)} bytes and needs QR version {qr.version} at level "
            f"{level}, too dense to scan at arm's length at qr.size_cm = {size_cm:g} "
            f"(version {limit} at most); shorten qr.subject or qr.body, lower "
            "qr.error_correction or raise qr.size_cm"
        )
    matrix = tuple(tuple(bool(m) for m in row) for row in qr.modules)
    return qr.version, matrix


def _qrcode(uri: str, level: str, border: int) -> qrcode.QRCode:
    qr = qrcode.QRCode(error_correction=LEVELS[level], border=border, box_size=10)
    # optimize=0: one byte-mode segment, the plainest encoding for every decoder.
    qr.add_data(uri.encode("ascii"), optimize=0)
    return qr


def make_code(config: Config, location: Location) -> Code:
    q = config.qr
    where = f"{config.path}: [qr] for location {location.slug!r}"
    _check_sizes(config)
    uri = mailto(config.mailbox.address, slug=None if q.tag == "none" else location.slug,
                 tag=q.tag, subject=q.subject, body=q.body)
    version, matrix = encode(uri, q.error_correction, q.size_cm, where)
    address = uri.removeprefix("mailto:").partition("?")[0]
    return Code(location, address, uri, version, q.error_correction, matrix)


def find_location(config: Config, slug: str) -> Location:
    _check_slug(slug, "--location")
    location = config.location(slug)
    if location is None:
        known = ", ".join(loc.slug for loc in config.locations) or "none"
        raise ConfigError(f"{config.path}: no [[locations]] entry has slug {slug!r} "
                          f"(known: {known})")
    return location


def _check_sizes(config: Config) -> None:
    q = config.qr
    if not 2 <= q.size_cm <= 50:
        raise ConfigError(f"{config.path}: qr.size_cm must be between 2 and 50 (cm)")
    if not 150 <= q.dpi <= 2400:
        raise ConfigError(f"{config.path}: qr.dpi must be between 150 and 2400")


# ----- fonts --------------------------------------------------------------------------


# fpdf2 reads its fonts lazily, at output time, so the files must stay where
# they are for the whole run (as_file may extract them from a zip to a temp file).
_FONT_FILES = contextlib.ExitStack()
atexit.register(_FONT_FILES.close)


@functools.cache
def font_path(bold: bool = False) -> Path:
    """DejaVu Sans (shipped, Vietnamese subset): the same glyphs on every machine."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return _FONT_FILES.enter_context(as_file(files("mailbox_processor").joinpath("fonts", name)))


@functools.cache
def _pil_font(bold: bool, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(bold)), px)


# ----- PNG ----------------------------------------------------------------------------


def png(code: Code, size_cm: float, dpi: int, caption: bool = True) -> bytes:
    """The code exactly size_cm wide at dpi, plus the quiet zone.

    Module edges are rounded to whole pixels one by one, so a module is 21 or 22
    pixels rather than the code being a few millimetres off the size asked for.
    Under it, when caption is set, the location name and the address, so the
    person putting posters up knows which is which (and a citizen can type it).
    """
    width = round(size_cm / 2.54 * dpi)
    n = code.modules
    quiet = math.ceil(QUIET_ZONE * width / n)
    edge = [quiet + round(i * width / n) for i in range(n + 1)]
    side = width + 2 * quiet
    box = round(width / n)
    lines = (_nfc(code.location.name), code.address) if caption else ()
    img = Image.new("L", (side, side + _caption_height(side, box, lines)), 255)
    draw = ImageDraw.Draw(img)
    for y, row in enumerate(code.matrix):
        for x0, x1 in _runs(row):
            draw.rectangle((edge[x0], edge[y], edge[x1] - 1, edge[y + 1] - 1), fill=0)
    if lines:
        _draw_caption(draw, side, box, lines)
    out = io.BytesIO()
    img.save(out, "PNG", dpi=(dpi, dpi), optimize=True)
    return out.getvalue()


def _caption_height(side: int, box: int, lines: Sequence[str]) -> int:
    return 0 if not lines else round(side * 0.08) * len(lines) + box


def _draw_caption(draw: ImageDraw.ImageDraw, side: int, box: int, lines: Sequence[str]) -> None:
    # Below the whole quiet zone: text inside it can stop a decoder finding the code.
    line_px = round(side * 0.08)
    y = side
    for i, text in enumerate(lines):
        size = 0.7 if i == 0 else 0.55  # the name reads first; the address is the fallback
        font = _fit_font(draw, text, bold=i == 0, px=round(line_px * size), width=side - 2 * box)
        draw.text((side / 2, y), text, font=font, fill=0, anchor="mt")
        y += line_px


def _fit_font(draw: ImageDraw.ImageDraw, text: str, *, bold: bool, px: int,
              width: int) -> ImageFont.FreeTypeFont:
    while True:
        font = _pil_font(bold, px)
        if px <= 6 or draw.textlength(text, font=font) <= width:
            return font
        px -= 1


# ----- SVG ----------------------------------------------------------------------------


def svg(code: Code, size_cm: float) -> bytes:
    """A single-path SVG (qrcode's SvgPathImage, white background), size_cm wide plus quiet zone."""
    img = _qrcode(code.uri, code.level, QUIET_ZONE).make_image(image_factory=SvgPathFillImage)
    root = ET.fromstring(img.to_string())
    # qrcode draws 1 mm modules; the viewBox keeps that grid, width/height scale it.
    total_mm = size_cm * 10 * (code.modules + 2 * QUIET_ZONE) / code.modules
    root.set("width", f"{total_mm:.2f}mm")
    root.set("height", f"{total_mm:.2f}mm")
    ET.register_namespace("", "http://www.w3.org/2000/svg")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _runs(row: Sequence[bool]) -> Iterable[tuple[int, int]]:
    """(start, end) of each run of dark modules: fewer shapes than one per module."""
    start = None
    for x, dark in enumerate((*row, False)):
        if dark and start is None:
            start = x
        elif not dark and start is not None:
            yield start, x
            start = None


# ----- the poster template --------------------------------------------------------------


KINDS = ("title", "subtitle", "location", "lead", "qr", "step", "address", "note", "footer")


def poster_blocks(config: Config, code: Code) -> list[Block]:
    """The poster's wording: poster.txt beside the config file if a ward made one, else ours."""
    source, name = _template_source(config)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)  # a PDF is not HTML: nothing to escape
    values = {"committee": config.mailbox.name, "location": code.location.name,
              "slug": code.location.slug, "address": code.address}
    try:
        text = env.from_string(source).render({k: _nfc(v) for k, v in values.items()})
    except jinja2.TemplateError as e:
        line = getattr(e, "lineno", None)
        message = " ".join(str(e).split())  # syntax errors quote the line on a second one
        raise ConfigError(f"{name}{f' line {line}' if line else ''}: {message}") from None
    return parse_blocks(text, name)


def parse_blocks(text: str, name: str) -> list[Block]:
    blocks: list[Block] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        kind, colon, rest = line.partition(":")
        kind = kind.strip()
        if not colon or kind not in KINDS:
            raise ConfigError(f"{name} line {number}: expected \"kind: text\" with kind one of "
                              f"{', '.join(KINDS)}")
        blocks.append(Block(kind, _nfc(rest.strip())))
    if sum(b.kind == "qr" for b in blocks) != 1:
        raise ConfigError(f"{name}: needs exactly one \"qr:\" line (where the code goes)")
    return blocks


def _template_source(config: Config) -> tuple[str, str]:
    local = config.path.parent / POSTER_TEMPLATE
    try:
        return local.read_text(encoding="utf-8"), str(local)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{local}: cannot read: {e}") from None
    shipped = files("mailbox_processor.templates").joinpath(POSTER_TEMPLATE)
    return shipped.read_text(encoding="utf-8"), f"templates/{POSTER_TEMPLATE}"


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# ----- the PDF poster -------------------------------------------------------------------


RED = (183, 28, 28)
INK = (33, 33, 33)
GREY = (90, 90, 90)
MARGIN = 16.0  # mm


class _Poster(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_auto_page_break(False)
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.add_font("DejaVu", "", font_path())
        self.add_font("DejaVu", "B", font_path(bold=True))
        self.set_lang("vi")
        self.set_creator("mailbox-processor")


def poster_pdf(config: Config, codes: Sequence[Code]) -> bytes:
    """An A4 PDF with one poster per code."""
    pdf = _Poster()
    pdf.set_title(_nfc(config.mailbox.name))
    for code in codes:
        blocks = poster_blocks(config, code)
        _add_poster(pdf, blocks, code, _poster_code_mm(config.qr.size_cm))
    return bytes(pdf.output())


def _poster_code_mm(size_cm: float) -> float:
    low, high = POSTER_CODE_CM
    return min(max(size_cm, low), high) * 10


def _add_poster(pdf: FPDF, blocks: Sequence[Block], code: Code, code_mm: float) -> None:
    """Lay the poster out; if a ward's long wording runs off the page, shrink the type."""
    bottom = A4_MM[1] - MARGIN / 2
    for scale in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5):
        trial = _Poster()
        trial.add_page()
        end = _layout(trial, blocks, code, code_mm, scale, top=MARGIN)
        if end <= bottom:
            break
    pdf.add_page()
    # Centre the content on the page: a short poster should not hang from the top.
    _layout(pdf, blocks, code, code_mm, scale, top=MARGIN + max(0.0, bottom - end) / 2)


def _layout(pdf: FPDF, blocks: Sequence[Block], code: Code, code_mm: float,
            scale: float, top: float) -> float:
    """Draw the blocks top to bottom from top; returns the y where the content ends."""
    pdf.set_y(top)
    i = 0
    while i < len(blocks):
        block = blocks[i]
        if block.kind == "step":  # consecutive steps share one row
            run = next((n for n, b in enumerate(blocks[i:]) if b.kind != "step"), len(blocks) - i)
            _steps(pdf, blocks[i:i + run], scale)
            i += run
            continue
        DRAW[block.kind](pdf, block, scale, code=code, code_mm=code_mm)
        if block.kind in ("title", "subtitle") and (
                i + 1 == len(blocks) or blocks[i + 1].kind not in ("title", "subtitle")):
            _rule(pdf, scale)
        i += 1
    return pdf.get_y()


def _text(pdf: FPDF, text: str, size: float, *, bold: bool = False, colour=INK,
          gap: float = 0.0, line: float = 1.25) -> None:
    pdf.set_font("DejaVu", "B" if bold else "", size)
    pdf.set_text_color(*colour)
    pdf.multi_cell(0, size * 0.3528 * line, text, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(gap)


def _title(pdf: FPDF, b: Block, s: float, **_: Any) -> None:
    _text(pdf, b.text, 46 * s, bold=True, colour=RED, gap=2 * s)


def _subtitle(pdf: FPDF, b: Block, s: float, **_: Any) -> None:
    _text(pdf, b.text, 15 * s, colour=GREY, gap=1 * s)


def _rule(pdf: FPDF, s: float) -> None:
    y = pdf.get_y() + 3 * s
    pdf.set_draw_color(*RED)
    pdf.set_line_width(1.2)
    pdf.line(MARGIN + 30, y, A4_MM[0] - MARGIN - 30, y)
    pdf.set_y(y + 7 * s)


def _location(pdf: FPDF, b: Block, s: float, **_: Any) -> None:
    _text(pdf, b.text, 30 * s, bold=True, gap=3 * s)


def _lead(pdf: FPDF, b: Block, s: float, **_: Any) -> None:
    _text(pdf, b.text, 13 * s, colour=GREY, gap=2 * s)


def _qr(pdf: FPDF, _b: Block, s: float, *, code: Code, code_mm: float, **_: Any) -> None:
    """The code as vector rectangles (crisp at any print size), quiet zone left white."""
    module = code_mm / code.modules
    x0 = (A4_MM[0] - code_mm) / 2
    y0 = pdf.get_y() + QUIET_ZONE * module
    pdf.set_fill_color(0, 0, 0)
    for y, row in enumerate(code.matrix):
        for a, b in _runs(row):
            # A hair of overlap so a PDF viewer's anti-aliasing leaves no seams.
            pdf.rect(x0 + a * module, y0 + y * module, (b - a) * module + 0.01, module + 0.01,
                     style="F")
    pdf.set_y(y0 + code_mm + QUIET_ZONE * module)


def _steps(pdf: FPDF, steps: Sequence[Block], s: float) -> None:
    """Numbered steps side by side with arrows between them: quét mã → viết ý kiến → bấm gửi."""
    width = A4_MM[0] - 2 * MARGIN
    col = width / len(steps)
    top = pdf.get_y() + 1 * s
    bottom = top
    for n, step in enumerate(steps):
        head, _, detail = (part.strip() for part in step.text.partition("|"))
        x = MARGIN + n * col
        d = 11 * s
        pdf.set_fill_color(*RED)
        pdf.ellipse(x + (col - d) / 2, top, d, d, style="F")
        pdf.set_font("DejaVu", "B", 16 * s)
        pdf.set_text_color(255, 255, 255)
        pdf.set_xy(x, top + d / 2 - 3.2 * s)
        pdf.cell(col, 6.4 * s, str(n + 1), align="C")
        if n:
            pdf.set_font("DejaVu", "B", 18 * s)
            pdf.set_text_color(*RED)
            pdf.set_xy(x - 6 * s, top + d / 2 - 3.5 * s)
            pdf.cell(12 * s, 7 * s, "→", align="C")
        pdf.set_xy(x + 2, top + d + 2 * s)
        pdf.set_font("DejaVu", "B", 14 * s)
        pdf.set_text_color(*INK)
        pdf.multi_cell(col - 4, 6 * s, head, align="C", new_x="LEFT", new_y="NEXT")
        if detail:
            pdf.set_font("DejaVu", "", 10.5 * s)
            pdf.set_text_color(*GREY)
            pdf.multi_cell(col - 4, 4.8 * s, detail, align="C", new_x="LEFT", new_y="NEXT")
        bottom = max(bottom, pdf.get_y())
    pdf.set_xy(MARGIN, bottom + 5 * s)


def _address(pdf: FPDF, b: Block, s: float, **_: Any) -> None:
    lead, _, address = (part.strip() for part in b.text.partition("|"))
    if lead:
        _text(pdf, lead, 11.5 * s, colour=GREY, gap=0.5 * s)
    if address:
        _text(pdf, address, 17 * s, bold=True, gap=5 * s)


def _note(pdf: FPDF, b: Block, s: float, **_: Any) -> None:
    """The confidentiality note, boxed: measured first so the box fits the text."""
    size, pad = 10 * s, 4 * s
    pdf.set_font("DejaVu", "", size)
    inner = A4_MM[0] - 2 * MARGIN - 2 * pad
    # markdown: a ward may write **Bảo mật:** to make a lead-in bold.
    height = pdf.multi_cell(inner, size * 0.3528 * 1.35, b.text, dry_run=True, output="HEIGHT",
                            markdown=True)
    top = pdf.get_y()
    pdf.set_fill_color(245, 240, 232)
    pdf.rect(MARGIN, top, A4_MM[0] - 2 * MARGIN, height + 2 * pad, style="F")
    pdf.set_text_color(*INK)
    pdf.set_xy(MARGIN + pad, top + pad)
    pdf.multi_cell(inner, size * 0.3528 * 1.35, b.text, align="J", new_x="LMARGIN",
                   new_y="NEXT", markdown=True)
    pdf.set_y(top + height + 2 * pad + 4 * s)


def _footer(pdf: FPDF, b: Block, s: float, **_: Any) -> None:
    _text(pdf, b.text, 8.5 * s, colour=GREY)


DRAW: dict[str, Callable[..., None]] = {
    "title": _title, "subtitle": _subtitle, "location": _location, "lead": _lead, "qr": _qr,
    "address": _address, "note": _note, "footer": _footer,
}


# ----- files ----------------------------------------------------------------------------


def render_location(config: Config, code: Code, caption: bool = True) -> dict[str, bytes]:
    """{file name: contents}: SLUG.png, SLUG.svg and SLUG.pdf."""
    q = config.qr
    slug = code.location.slug
    return {
        f"{slug}.png": png(code, q.size_cm, q.dpi, caption),
        f"{slug}.svg": svg(code, q.size_cm),
        f"{slug}.pdf": poster_pdf(config, [code]),
    }


def write_location(config: Config, code: Code, out: Path, caption: bool = True) -> list[Path]:
    return _write_files(out, render_location(config, code, caption))


def write_all(config: Config, out: Path, caption: bool = True,
              progress: Callable[[list[Code]], Iterable[Code]] | None = None) -> list[Path]:
    """Every location's files, and ALL_POSTERS with one poster per page."""
    if not config.locations:
        raise ConfigError(f"{config.path}: no [[locations]]; add one per place a poster hangs")
    codes = [make_code(config, loc) for loc in config.locations]
    rendered: dict[str, bytes] = {}
    for code in progress(codes) if progress else codes:
        rendered |= render_location(config, code, caption)
    rendered[ALL_POSTERS] = poster_pdf(config, codes)
    return _write_files(out, rendered)


def _write_files(out: Path, rendered: dict[str, bytes]) -> list[Path]:
    # Everything is rendered before anything is written: a bad template or an
    # overlong link leaves no half-made set of posters behind.
    return [_write(out / name, data) for name, data in rendered.items()]


def _write(path: Path, data: bytes) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # a reader never sees a half-written file
    except OSError as e:
        raise ConfigError(f"--out {path.parent}: cannot write {path.name}: {e.strerror}") from None
    return path
