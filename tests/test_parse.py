"""parse.py: charsets, NFC, headers, body choice, bounds, automatic mail, the corpora."""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
import time
import unicodedata
from pathlib import Path

import pytest

from mailbox_processor import anonymise, config, parse
from mailbox_processor.errors import MessageError
from tests import mailfactory as mf

LIMITS = config.Parse()
VIETNAMESE = "Đường ống nước ở tổ dân phố 3 bị vỡ, nước tràn ra ngõ. Đề nghị xử lý gấp! Ủy ban ơi."


def raw_message(body: bytes, *, ctype: str = "text/plain", charset: str | None = "utf-8",
                cte: str = "8bit", headers: bytes = b"") -> bytes:
    params = f"; charset={charset}" if charset is not None else ""
    return (
        b"From: Dan <dan@example.vn>\r\nTo: hopthu@phuong.example.vn\r\nSubject: x\r\n"
        + headers
        + f"MIME-Version: 1.0\r\nContent-Type: {ctype}{params}\r\n"
          f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode()
        + body
    )


# ----- Vietnamese text survives -------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "encoding"),
    [
        ("gmail-android", "8bit"),  # UTF-8, 8-bit
        ("iphone", "qp"),
        ("outlook-ios", "base64"),
        ("samsung", "base64"),  # HTML only, converted to text
        ("desktop-1258", None),  # Windows-1258, combining tone marks
    ],
)
def test_vietnamese_text_survives_every_transfer_encoding(client: str, encoding: str | None) -> None:
    raw = mf.citizen_mail(client, body=VIETNAMESE, subject="Vỡ ống nước ở ngõ 5",
                          encoding=encoding, signature="")
    parsed = parse.parse(raw, LIMITS)
    assert VIETNAMESE in parsed.text
    assert parsed.subject == "Vỡ ống nước ở ngõ 5"
    for value in (parsed.text, parsed.subject, parsed.identity.from_):
        assert unicodedata.is_normalized("NFC", value)
    assert parsed.identity.from_.startswith(mf.PLANTED.name)


def test_windows_1258_really_uses_combining_marks_on_the_wire() -> None:
    """The desktop fixture must be the hard case: NFC only after our decoding."""
    wire = mf.to_windows_1258(VIETNAMESE)
    decoded = wire.decode("windows-1258")
    assert not unicodedata.is_normalized("NFC", decoded)
    assert unicodedata.normalize("NFC", decoded) == VIETNAMESE


def test_combining_marks_in_utf8_are_composed() -> None:
    nfd = unicodedata.normalize("NFD", VIETNAMESE)
    parsed = parse.parse(raw_message(nfd.encode()), LIMITS)
    assert parsed.text == VIETNAMESE


@pytest.mark.parametrize("charset", ["y", "all", "binary", "unknown-8bit", "us-ascii", None,
                                     '"utf8"', "x-user-defined"])
def test_bogus_or_missing_charset_falls_back_to_utf8(charset: str | None) -> None:
    parsed = parse.parse(raw_message(VIETNAMESE.encode(), charset=charset), LIMITS)
    assert parsed.text == VIETNAMESE


@pytest.mark.parametrize("charset", ["y", None, "all"])
def test_bogus_charset_on_windows_1258_bytes_is_detected(charset: str | None) -> None:
    text = VIETNAMESE * 3
    parsed = parse.parse(raw_message(mf.to_windows_1258(text), charset=charset), LIMITS)
    assert parsed.text == text


@pytest.mark.parametrize("charset", ["us-ascii", "iso-8859-1", "windows-1252", "windows-1258"])
def test_wrong_declared_charset_does_not_garble_utf8(charset: str) -> None:
    """A client that says iso-8859-1 but sends UTF-8 would otherwise give mojibake."""
    parsed = parse.parse(raw_message(VIETNAMESE.encode(), charset=charset), LIMITS)
    assert "Ä" not in parsed.text and parsed.text == VIETNAMESE


@pytest.mark.parametrize(("charset", "text"), [
    ("iso-8859-1", "Café crème, garçon à côté"),
    ("windows-1252", "“Quoted” – naïve"),
    ("koi8-r", "Привет, как дела"),
    ("gb2312", "你好世界"),
    ("iso-2022-jp", "こんにちは"),
    ("utf-16", "Đường ống nước"),
])
def test_correctly_declared_charsets_are_honoured(charset: str, text: str) -> None:
    parsed = parse.parse(raw_message(text.encode(charset), charset=charset), LIMITS)
    assert parsed.text == text


def test_eight_bit_and_encoded_headers_are_decoded() -> None:
    raw = (
        "From: Trần Thị Hoa <hoa@example.vn>\r\n".encode()
        + b"To: hopthu@phuong.example.vn\r\n"
        + b"Subject: =?utf-8?q?G=C3=B3p_=C3=BD?= =?utf-8?b?IHbhu4EgcsOhYw==?= th\xe1\xba\xa3i\r\n"
        + b"Content-Type: text/plain; charset=utf-8\r\n\r\nx"
    )
    parsed = parse.parse(raw, LIMITS)
    assert parsed.subject == "Góp ý về rác thải"
    assert parsed.identity.from_ == "Trần Thị Hoa <hoa@example.vn>"
    assert parsed.headers["to"] == ("hopthu@phuong.example.vn",)


def test_windows_1258_encoded_word_subject() -> None:
    raw = mf.citizen_mail("desktop-1258", subject="Đề nghị sửa đường")
    assert b"=?windows-1258?q?" in raw
    assert parse.parse(raw, LIMITS).subject == "Đề nghị sửa đường"


def test_html_only_mail_becomes_text_without_markup() -> None:
    html = ("<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
            "<p>Cống <b>tắc</b> &amp; bốc mùi</p><p>Ngõ&nbsp;7</p></body></html>")
    parsed = parse.parse(raw_message(html.encode(), ctype="text/html"), LIMITS)
    assert "Cống tắc & bốc mùi" in parsed.text
    assert "Ngõ" in parsed.text and "7" in parsed.text
    assert "<" not in parsed.text and "alert" not in parsed.text and "color" not in parsed.text


def test_text_plain_is_preferred_over_html() -> None:
    raw = mf.citizen_mail("gmail-android", body="Chỉ một lần", signature="")
    parsed = parse.parse(raw, LIMITS)
    assert parsed.text.count("Chỉ một lần") == 1
    assert "<div" not in parsed.text


def test_headers_identity_and_parts_are_filled() -> None:
    photo = mf.photo_jpeg()
    raw = mf.citizen_mail("iphone", photo=photo,
                          attachments=(("application/pdf", "don.pdf", b"%PDF-1.4"),))
    parsed = parse.parse(raw, LIMITS)
    assert parsed.headers["message-id"] == (f"<{mf.PLANTED.message_id}>",)
    assert len(parsed.headers["received"]) == 2
    assert parsed.identity.return_path == f"<{mf.PLANTED.address}>"
    assert parsed.identity.reply_address() == mf.PLANTED.address
    assert [(p.content_type, p.filename) for p in parsed.parts] == [
        ("image/jpeg", mf.PLANTED.filename), ("application/pdf", "don.pdf")]
    assert parsed.parts[0].payload == photo
    assert not parsed.automatic


@pytest.mark.parametrize(
    "header",
    [
        b"Auto-Submitted: auto-replied\r\n",
        b"Auto-Submitted: auto-generated\r\n",
        b"X-Autoreply: yes\r\n",
        b"X-Autorespond: vacation\r\n",
        b"Precedence: auto_reply\r\n",
        b"Return-Path: <>\r\n",
        b"Return-Path: <MAILER-DAEMON@mx.example.vn>\r\n",
    ],
)
def test_automatic_mail_is_recognised(header: bytes) -> None:
    assert parse.parse(raw_message(b"Out of office", headers=header), LIMITS).automatic


def test_auto_submitted_no_is_a_person() -> None:
    raw = raw_message(b"hello", headers=b"Auto-Submitted: no\r\nPrecedence: bulk\r\n")
    assert not parse.parse(raw, LIMITS).automatic


def test_bounce_from_postmaster_and_multipart_report_are_automatic() -> None:
    report = (
        b"From: Mail Delivery System <postmaster@mx.example.vn>\r\nTo: a@b.vn\r\nSubject: x\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b" boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        b"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n"
        b"\r\n--b1--\r\n"
    )
    assert parse.parse(report, LIMITS).automatic


# ----- bounds ----------------------------------------------------------------------


def nested(depth: int) -> bytes:
    head = b"From: a@b.vn\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    opening, closing = b"", b""
    for i in range(depth):
        opening += f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
        closing = f"\r\n--b{i}--\r\n".encode() + closing
    leaf = "Content-Type: text/plain; charset=utf-8\r\n\r\nsâu".encode()
    return head + opening + leaf + closing


def test_nesting_within_the_limit_is_read() -> None:
    assert parse.parse(nested(10), LIMITS).text == "sâu"


def test_nesting_beyond_the_limit_is_refused() -> None:
    with pytest.raises(MessageError) as e:
        parse.parse(nested(LIMITS.max_depth + 5), LIMITS)
    assert e.value.kind == "too-deep"


def test_a_nesting_bomb_is_refused_without_recursion_error() -> None:
    with pytest.raises(MessageError) as e:
        parse.parse(nested(3000), LIMITS)
    assert e.value.kind == "too-deep"


def test_too_many_parts() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(50))
    raw = (b"From: a@b.vn\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b"
           b"\r\n\r\n" + parts + b"--b--\r\n")
    with pytest.raises(MessageError) as e:
        parse.parse(raw, config.Parse(max_parts=20))
    assert e.value.kind == "too-many-parts"
    assert len(parse.parse(raw, LIMITS).text.split("\n")) == 50


def test_decoded_size_is_bounded() -> None:
    import base64

    body = base64.encodebytes(b"\0" * 200_000)
    raw = raw_message(body, ctype="application/octet-stream", charset=None, cte="base64")
    with pytest.raises(MessageError) as e:
        parse.parse(raw, config.Parse(max_decoded_bytes=100_000))
    assert e.value.kind == "too-large"
    assert "\0" not in e.value.detail


def test_wall_time_limit_quarantines_and_restores_the_previous_timer() -> None:
    calls: list[int] = []

    def previous(signum: int, frame: object) -> None:
        calls.append(signum)

    old = signal.signal(signal.SIGALRM, previous)
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        raw = mf.citizen_mail("samsung", body=VIETNAMESE * 2000)
        with pytest.raises(MessageError) as e:
            parse.parse(raw, config.Parse(max_seconds=0.0005))
        assert e.value.kind == "timeout"
        assert signal.getsignal(signal.SIGALRM) is previous
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < remaining <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert calls == []


def test_outside_the_main_thread_there_is_no_timer_but_parsing_works() -> None:
    results: list[object] = []
    t = threading.Thread(target=lambda: results.append(
        parse.parse(mf.citizen_mail("iphone"), config.Parse(max_seconds=0.0005))))
    t.start()
    t.join(30)
    assert results and "Đèn đường" in results[0].text  # type: ignore[attr-defined]


def test_error_detail_never_quotes_the_message() -> None:
    secret = b"bi-mat-0912345678"
    for raw in (nested(40) + secret, raw_message(secret * 100_000)):
        with pytest.raises(MessageError) as e:
            parse.parse(raw, config.Parse(max_decoded_bytes=500_000))
        assert "bi-mat" not in str(e.value) and "0912345678" not in str(e.value)


def test_mail_parser_failure_on_broken_boundaries_is_caught() -> None:
    """mail-parser 4.8.0 raises AttributeError on nested/unclosed boundaries."""
    raw = (b"From: a@b.vn\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=o\r\n"
           b"\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nn\xc3\xb4i dung\r\n--o\r\n"
           b"Content-Type: text/plain\r\n\r\ntail\r\n")
    try:
        parsed = parse.parse(raw, LIMITS)
    except MessageError:
        return
    assert "nôi dung" in parsed.text


# ----- the corpora -----------------------------------------------------------------


def corpus_files(shared: Path) -> list[Path]:
    root = shared / "corpora"
    if not root.is_dir():
        pytest.skip("../shared/corpora is absent")
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and "_licenses" not in p.parts and p.name != "README.md"
    )


def test_every_corpus_file_is_read_or_quarantined_within_the_time_bound(
    shared_dir: Path, make_config, record_property
) -> None:
    cfg = config.load(make_config())
    files = corpus_files(shared_dir)
    quarantined: dict[str, int] = {}
    slowest = 0.0
    started = time.monotonic()
    for path in files:
        t = time.monotonic()
        try:
            parsed = parse.parse(path.read_bytes(), cfg.parse)
            sub = anonymise.anonymise(parsed, ref="HT-TEST1", received_on=dt.date(2026, 11, 20),
                                      config=cfg, pepper=b"p" * 32)
            assert unicodedata.is_normalized("NFC", sub.text), path
        except MessageError as e:  # the only failure allowed: quarantine
            quarantined[e.kind] = quarantined.get(e.kind, 0) + 1
        elapsed = time.monotonic() - t
        slowest = max(slowest, elapsed)
        assert elapsed < cfg.parse.max_seconds, path
    total = time.monotonic() - started
    record_property("corpus", f"{len(files)} files, quarantined {quarantined}, "
                              f"slowest {slowest:.3f} s, total {total:.1f} s")
    assert len(files) > 300
    assert sum(quarantined.values()) < len(files) // 10  # nearly all mail is readable


def test_the_corpus_nesting_bomb_does_not_blow_the_stack(shared_dir: Path) -> None:
    path = shared_dir / "corpora" / "mimekit" / "messages" / "stack-overflow.txt"
    if not path.exists():
        pytest.skip("corpus file absent")
    t = time.monotonic()
    with contextlib.suppress(MessageError):
        parse.parse(path.read_bytes(), LIMITS)
    assert time.monotonic() - t < 5


def test_mbox_container_is_one_message_not_a_crash(shared_dir: Path) -> None:
    path = shared_dir / "corpora" / "mimekit" / "mbox" / "simple.mbox.txt"
    if not path.exists():
        pytest.skip("corpus file absent")
    try:
        parsed = parse.parse(path.read_bytes(), LIMITS)
    except MessageError:
        return
    assert isinstance(parsed.text, str)


def test_terminal_escapes_and_bidi_overrides_do_not_reach_the_text() -> None:
    from email.message import EmailMessage

    from mailbox_processor.config import Parse
    from mailbox_processor.parse import parse

    msg = EmailMessage()
    msg["From"] = "a@example.vn"
    msg["Subject"] = "Góp ý\x1b[2J"
    msg.set_content("Đường\x1b]0;pwned\x07 hỏng\u202e ngõ 5\r\nDòng hai\tcó tab\x9b")

    parsed = parse(msg.as_bytes(), Parse())

    for bad in ("\x1b", "\x07", "\u202e", "\r", "\x9b"):
        assert bad not in parsed.text + parsed.subject
    assert "Đường]0;pwned hỏng ngõ 5\nDòng hai\tcó tab" in parsed.text
