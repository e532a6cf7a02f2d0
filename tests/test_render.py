"""The digest's HTML as mail clients and phones see it: email craft rules, and a real browser.

The browser check needs Debian's `chromium` package (apt-get install -y chromium);
without it that one test is skipped, the craft checks still run.
"""

from __future__ import annotations

import html as html_mod
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mailbox_processor import config as config_mod
from mailbox_processor import digest
from mailbox_processor.store import Row

LONG_WORD = "https://example.vn/duong-dan-rat-dai/" + "khongcodaucach" * 30
TEXTS = [
    "Cháy lớn ở nhà số 5 ngõ 3 phố Hàng Bạc, khói mù mịt, cần cứu hỏa ngay.",
    "Ổ gà lớn trên đường Nguyễn Trãi gây nguy hiểm cho người đi xe máy vào buổi tối.",
    "Ổ gà lớn trên đường Nguyễn Trãi gây nguy hiểm cho người đi xe máy vào buổi tối!",
    f"Đường dẫn dài không ngắt được: {LONG_WORD}",
    "<table width=2000><tr><td>bảng của người dân</td></tr></table> <div style=width:3000px>x</div>",
    "Dòng một\nDòng hai\n\nĐoạn mới " + "rất dài " * 150,
]


def _config(tmp_path: Path, language: str = "vi") -> config_mod.Config:
    return config_mod.parse({
        "mailbox": {"address": "hopthu@phuong.example.vn",
                    "name": "Hòm thư số – Ủy ban MTTQ phường Ngọc Sơn"},
        "imap": {"host": "127.0.0.1", "port": 1, "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "none",
                 "from": "Hòm thư số <hopthu@phuong.example.vn>"},
        "digest": {"to": ["chutich@phuong.example.vn"], "language": language},
        "store": {"path": str(tmp_path / "s.sqlite3")},
        "privacy": {},
        "locations": [{"slug": "tdp1", "name": "Tổ dân phố 1"},
                      {"slug": "nvh", "name": "Nhà văn hóa khu phố có tên rất dài để thử xuống dòng"}],
    }, tmp_path / "config.toml")


def _row(n: int, text: str, urgency: str, flags: tuple[str, ...] = ()) -> Row:
    cats = list(digest.CATEGORIES)
    return Row(ref=f"HT-{n:05d}", date="2026-12-01", location=("tdp1", "nvh")[n % 2],
               category=cats[n % 3], urgency=urgency, status="new", flags=flags,
               quarantined=False, error_kind=None, text=text,
               images=(("anh-1.jpg", "image/jpeg", 10, 10),), withheld=("PDF",),
               confidence=0.9, cues=())


def sample_digest(tmp_path: Path, language: str = "vi") -> digest.Digest:
    rows = [(_row(i, t, ("khan", "som", "thuong")[i % 3]), i == 0) for i, t in enumerate(TEXTS)]
    rows.append((_row(90, "quảng cáo", "thuong", ("spam",)), False))
    return digest.assemble(
        _config(tmp_path, language), rows, [("HT-QQQQQ", "parse")],
        [("HT-OLD01", "answered", "2026-11-30T10:00:00+00:00")],
        "2026-12-01T00:00:00+00:00", "2026-11-30T00:00:00+00:00",
        {"total": 3, "urgency:thuong": 3, "giao-thong": 3},
    )


@pytest.fixture
def html(tmp_path: Path) -> str:
    return digest.render(sample_digest(tmp_path)).html


# ----- email craft -----------------------------------------------------------------------------


def test_no_script_and_no_external_resource_or_link_but_mailto(html: str) -> None:
    lower = html.lower()
    assert "<script" not in lower
    assert "<img" not in lower and "<link" not in lower and "@import" not in lower
    assert "url(" not in lower
    assert re.findall(r"\ssrc\s*=", lower) == []
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith("mailto:") for h in hrefs)


def test_one_600px_column_in_vietnamese_with_a_preheader(html: str) -> None:
    assert '<html lang="vi">' in html
    assert "max-width:600px" in html.replace(" ", "")
    m = re.search(r'<div class="pre" style="([^"]*)">([^<]*)</div>', html)
    assert m and "display:none" in m.group(1).replace(" ", "")
    assert m.group(2) == "6 ý kiến mới, 2 khẩn cấp, 2 cần xử lý sớm."


def test_every_style_is_inlined_and_only_dark_mode_stays_in_head(html: str) -> None:
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, re.S)
    assert len(styles) == 1
    assert styles[0].strip().startswith("@media (prefers-color-scheme: dark)")
    for cls in ("it", "tx", "hd", "bl", "foot"):
        for m in re.finditer(rf'<[a-z0-9]+ class="{cls}[" ][^>]*>', html):
            assert 'style="' in m.group(0), m.group(0)


def test_bars_are_html_tables_that_work_with_images_blocked(html: str) -> None:
    assert re.search(r'<td class="bf" width="\d+%" height="8" bgcolor="#1f5fa8"', html)


def test_readable_in_dark_mode(html: str) -> None:
    assert '<meta name="color-scheme" content="light dark">' in html
    dark = re.search(r"@media \(prefers-color-scheme: dark\)\{(.*)\}", html, re.S)
    assert dark and ".tx" in dark.group(1) and "background:#1b1f24" in dark.group(1)


def test_citizen_html_is_text_not_layout(html: str) -> None:
    assert "<table width=2000>" not in html and "&lt;table width=2000&gt;" in html
    assert 'style="width:3000px"' not in html


def test_lines_are_short_enough_for_8bit(html: str) -> None:
    assert max(len(line.encode()) for line in html.split("\n")) <= 998


def test_english_set_renders(tmp_path: Path) -> None:
    r = digest.render(sample_digest(tmp_path, "en"))
    assert '<html lang="en">' in r.html and "Urgent – read now" in r.text
    assert "Khẩn cấp" not in r.text


# ----- a real browser --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]
# A page that frames the digest at exactly `width` CSS pixels (headless chromium will not make
# a window narrower than 500 px for --dump-dom) and records how wide its content really is.
# The script is in the probe page only: the digest itself never carries one.
PROBE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" width="{width}" height="2000" style="border:0" srcdoc="{page}"></iframe>
<script>window.addEventListener("load", function () {{
  var d = document.getElementById("f").contentDocument;
  document.body.setAttribute("data-overflow",
    d.documentElement.scrollWidth + " " + d.defaultView.innerWidth);
}});</script></body></html>"""


def _chromium(args: list[str], width: int) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},2000", *args],
            capture_output=True, text=True, timeout=120, check=True,
        )


def content_width(page: str, width: int, tmp_path: Path) -> tuple[int, int]:
    """(scrollWidth, viewport width) of `page` rendered `width` px wide in chromium."""
    probe = tmp_path / f"probe-{width}.html"
    probe.write_text(PROBE.format(width=width, page=html_mod.escape(page, quote=True)),
                     encoding="utf-8")
    dom = _chromium(["--dump-dom", probe.as_uri()], 800).stdout
    m = re.search(r'data-overflow="(\d+) (\d+)"', dom)
    assert m, dom[:500]
    return int(m.group(1)), int(m.group(2))


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")


@needs_chromium
def test_the_probe_sees_an_overflow_when_there_is_one(tmp_path: Path) -> None:
    scroll, inner = content_width('<div style="width:900px">x</div>', 375, tmp_path)
    assert inner == 375 and scroll >= 900


@needs_chromium
@pytest.mark.parametrize("width", [375, 600])
def test_nothing_overflows_horizontally_in_chromium(width: int, tmp_path: Path) -> None:
    page = digest.render(sample_digest(tmp_path)).html
    scroll, inner = content_width(page, width, tmp_path)
    assert inner == width
    assert scroll <= width, f"content is {scroll}px wide in a {width}px window"
    # A screenshot for a human to look at (the screenshot mode sets the viewport exactly).
    path = tmp_path / "digest.html"
    path.write_text(page, encoding="utf-8")
    shot = tmp_path / f"digest-{width}.png"
    _chromium([f"--screenshot={shot}", path.as_uri()], width)
    assert shot.stat().st_size > 10_000
