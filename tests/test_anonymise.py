"""anonymise.py: quotes, signatures, redaction, location, pseudonym, pepper, attachments."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbox_processor import anonymise, config, parse
from mailbox_processor.errors import ConfigError, MessageError
from mailbox_processor.models import Parsed, Part, SenderIdentity
from tests import mailfactory as mf

PEPPER = bytes(range(32))
DAY = dt.date(2026, 11, 20)


@pytest.fixture
def cfg(make_config) -> config.Config:
    return config.load(make_config())


def parsed(text: str = "", subject: str = "", *, from_: str = "", headers=None,
           parts: tuple[Part, ...] = ()) -> Parsed:
    return Parsed(subject=subject, text=text, parts=parts, headers=headers or {},
                  identity=SenderIdentity(from_=from_))


def readable(cfg: config.Config, text: str = "", subject: str = "", *,
             from_: str = "Nguyễn Văn Bình <binh.nguyenvan1987@gmail.com>", **kw) -> str:
    sub = anonymise.anonymise(parsed(text, subject, from_=from_, **kw), ref="HT-TEST1",
                              received_on=DAY, config=cfg, pepper=PEPPER)
    return sub.text


# ----- quoted replies --------------------------------------------------------------

QUOTES = {
    "gmail-vi-wrapped": "Vào Th 6, 4 thg 12, 2020 vào lúc 23:12 Nguyễn Văn Bình <\n"
                        "binh@gmail.com> đã viết:\n\n> Thư cũ\n> dòng hai",
    "gmail-vi-one-line": "Vào Th 2, 16 thg 11, 2026 lúc 09:01 Trần Hoa <hoa@x.vn> đã viết:\nThư cũ",
    "gmail-en": "On Mon, Nov 16, 2026 at 9:01 AM Tran Hoa <hoa@x.vn> wrote:\n> Thư cũ",
    "gmail-en-wrapped": "On Mon, Nov 16, 2026 at 9:01 AM Tran Hoa <\nhoa@x.vn> wrote:\n\nThư cũ",
    "outlook-original": "-----Original Message-----\nFrom: Hoa\nSent: Monday\nTo: x\n\nThư cũ",
    "outlook-vi-block": "________________________________\nTừ: Trần Hoa <hoa@x.vn>\n"
                        "Đã gửi: Thứ Hai, 16 tháng 11, 2026 9:01\nĐến: hopthu@phuong.example.vn\n"
                        "Chủ đề: Góp ý\n\nThư cũ",
    "outlook-vi-no-rule": "Từ: Trần Hoa <hoa@x.vn>\nĐã gửi: Thứ Hai\nĐến: hopthu@x.vn\n\nThư cũ",
    "outlook-en-block": "From: Tran Hoa <hoa@x.vn>\nSent: Monday, November 16, 2026 9:01 AM\n"
                        "To: hopthu@x.vn\nSubject: RE: x\n\nThư cũ",
    "yahoo": "--- On Mon, 16/11/26, Hoa <hoa@x.vn> wrote:\n\nThư cũ",
    "gt-quotes": "> Thư cũ\n>> cũ hơn",
}


@pytest.mark.parametrize("form", sorted(QUOTES))
def test_quoted_reply_is_removed(cfg, form: str) -> None:
    text = readable(cfg, "Nhà tôi vẫn mất nước.\n\n" + QUOTES[form])
    assert text == "Nhà tôi vẫn mất nước."


FORWARDS = {
    "gmail-en": "---------- Forwarded message ---------\nFrom: Trần Hoa <hoa@x.vn>\n"
                "Date: Mon, Nov 16, 2026 at 9:01 AM\nSubject: Thông báo\nTo: <binh@x.vn>\n\n",
    "gmail-vi": "---------- Tin nhắn đã chuyển tiếp ---------\nTừ: Trần Hoa <hoa@x.vn>\n"
                "Date: Th 2, 16 thg 11, 2026 lúc 09:01\nSubject: Thông báo\nTo: <binh@x.vn>\n\n",
    "apple": "Begin forwarded message:\n\nFrom: Trần Hoa <hoa@x.vn>\nSubject: Thông báo\n"
             "Date: 16 November 2026 at 09:01:00 GMT+7\nTo: binh@x.vn\n\n",
    "apple-vi": "Bắt đầu thư được chuyển tiếp:\n\nTừ: Trần Hoa <hoa@x.vn>\nChủ đề: Thông báo\n"
                "Ngày: 16 tháng 11, 2026 lúc 09:01:00 GMT+7\nĐến: binh@x.vn\n\n",
}


@pytest.mark.parametrize("form", sorted(FORWARDS))
def test_forwarded_message_keeps_its_body_and_drops_its_headers(cfg, form: str) -> None:
    notice = "Ngày 20/11 khu phố cắt nước cả ngày, chưa thấy thông báo lại."
    text = readable(cfg, "Nhờ phường xem giúp thư này.\n\n" + FORWARDS[form] + notice
                    + "\n\nOn Mon, Nov 16, 2026 at 8:00 AM Ban quản lý <bql@x.vn> wrote:\n> cũ")
    assert text == "Nhờ phường xem giúp thư này.\n\n" + notice
    assert "Hoa" not in text and "hoa@x.vn" not in text


OUTLOOK_BLOCK = ("________________________________\nTừ: Ban quản lý <bql@x.vn>\n"
                 "Đã gửi: Thứ Hai, 16 tháng 11, 2026 9:01\nĐến: an@x.vn\n"
                 "Chủ đề: Thông báo cắt nước\n\n")


@pytest.mark.parametrize("subject", ["FW: Thông báo cắt nước", "CT: Thông báo cắt nước",
                                     "Fwd: Thông báo cắt nước"])
def test_an_outlook_forward_keeps_the_forwarded_body(cfg, subject: str) -> None:
    notice = "Ngày 20/11 khu phố cắt nước cả ngày."
    text = readable(cfg, "Nhờ phường xem giúp.\n\n" + OUTLOOK_BLOCK + notice
                    + "\n\n-----Original Message-----\nFrom: x\nSent: y\nTo: z\n\nthư cũ hơn",
                    subject)
    assert text == f"{subject}\n\nNhờ phường xem giúp.\n\n{notice}"


def test_an_outlook_reply_still_loses_the_quoted_block(cfg) -> None:
    text = readable(cfg, "Nhà tôi vẫn mất nước.\n\n" + OUTLOOK_BLOCK + "Thư cũ", "RE: Góp ý")
    assert text == "RE: Góp ý\n\nNhà tôi vẫn mất nước."


def test_bottom_posted_reply_keeps_the_citizens_words(cfg) -> None:
    body = "On 04/02/2012 06:26 PM, Hoa wrote:\n> Hỏi gì?\nVẫn mất nước."
    assert readable(cfg, body) == "Vẫn mất nước."


def test_a_formal_petition_header_is_not_taken_for_an_outlook_block(cfg) -> None:
    body = ("Kính gửi: Ủy ban nhân dân phường\nTừ: các hộ dân ngõ 12\nĐịa chỉ: ngõ 12 Hàng Bông\n"
            "Nội dung: đề nghị sửa đèn đường.")
    assert readable(cfg, body) == body


def test_ordinary_lines_that_look_a_bit_like_quotes_stay(cfg) -> None:
    body = ("Vào thứ Hai tuần trước, cống lại tắc.\nTừ hôm đó tới nay chưa ai đến.\n"
            "On the corner, rubbish piles up.")
    assert readable(cfg, body) == body


# ----- phone-client signatures ------------------------------------------------------

SIGNATURES = [
    "Sent from my iPhone", "Sent from my iPad", "Được gửi từ iPhone của tôi",
    "Gửi từ iPhone của tôi", "Sent from my Android", "Sent from my Samsung Galaxy smartphone.",
    "Sent from my Galaxy", "Đã gửi từ Samsung Galaxy của tôi.",
    "Đã gửi từ điện thoại thông minh Samsung Galaxy của tôi.", "Get Outlook for iOS",
    "Get Outlook for Android", "Tải Outlook cho iOS", "Tải Outlook cho Android",
    "Sent from Yahoo Mail on Android", "Sent from Yahoo Mail for iPhone",
    "Đã gửi từ Yahoo Mail trên Android", "Sent from Gmail Mobile", "Sent from Mail for Windows",
]


@pytest.mark.parametrize("signature", SIGNATURES)
def test_client_signature_line_is_removed(cfg, signature: str) -> None:
    assert readable(cfg, f"Đèn hỏng.\n\n{signature}") == "Đèn hỏng."


def test_signature_after_the_separator_is_removed(cfg) -> None:
    assert readable(cfg, "Đèn hỏng.\n-- \nTổ trưởng tổ 3\nĐT 0912 345 678") == "Đèn hỏng."


def test_sentences_about_sending_stay(cfg) -> None:
    body = "Tôi đã gửi từ tháng trước mà chưa ai trả lời."
    assert readable(cfg, body) == body


# ----- redaction -------------------------------------------------------------------


def test_full_name_and_its_runs_are_redacted(cfg) -> None:
    text = readable(cfg, "Tôi là Nguyễn Văn Bình. Anh Văn Bình ở số 5.\nNGUYỄN VĂN BÌNH")
    assert "Bình" not in text and "BÌNH" not in text
    assert text.count("[tên]") == 3


def test_name_typed_without_accents_is_redacted(cfg) -> None:
    assert "Binh" not in readable(cfg, "Ky ten: Nguyen Van Binh")


def test_sign_off_with_the_given_name_alone_is_redacted(cfg) -> None:
    sender = "Nguyễn Văn An <an@x.vn>"
    assert readable(cfg, "Cảm ơn.\n- An", from_=sender) == "Cảm ơn.\n[tên]"
    assert readable(cfg, "Cảm ơn.\nAn.", from_=sender) == "Cảm ơn.\n[tên]"
    assert readable(cfg, "An toàn là trên hết.", from_=sender) == "An toàn là trên hết."


def test_ordinary_words_that_share_name_syllables_stay(cfg) -> None:
    body = "Văn hóa khu phố tốt, vẫn an toàn, cuộc sống bình thường, thông minh."
    sender = "Nguyễn Văn An <an@x.vn>"
    assert readable(cfg, body, from_=sender) == body
    assert readable(cfg, body, from_="Lê Minh Thông <t@x.vn>") == body


def test_western_name_words_are_redacted(cfg) -> None:
    text = readable(cfg, "Regards, Jonathan. Smith family lives here.",
                    from_="Jonathan Smith <js@example.com>")
    assert "Jonathan" not in text and "Smith" not in text


def test_local_part_and_any_address_are_redacted(cfg) -> None:
    text = readable(cfg, "Nick của tôi là binh.nguyenvan1987, mail khác: hoa.tran+x@yahoo.com.vn, "
                         "hỏi chi.le@phuong.example.vn")
    assert "binh.nguyenvan1987" not in text and "@" not in text
    assert text.count("[email]") == 3


@pytest.mark.parametrize(
    "phone",
    ["0912 345 678", "0912345678", "+84 912.345.678", "+84912345678", "024 3825 1234",
     "(024) 3825-1234", "0983-456-789", "84 912 345 678", "028.3822.1234"],
)
def test_vietnamese_phone_numbers_are_redacted(cfg, phone: str) -> None:
    text = readable(cfg, f"Liên hệ {phone} nhé.")
    assert text == "Liên hệ [số điện thoại] nhé."


@pytest.mark.parametrize("number", ["001098012345", "012345678", "001 098 012 345",
                                    "123.456.789"])
def test_identity_card_numbers_are_redacted(cfg, number: str) -> None:
    assert readable(cfg, f"CCCD: {number}.") == "CCCD: [số giấy tờ]."


@pytest.mark.parametrize(
    "text",
    ["Tiền điện tăng 2.000.000 đồng", "Ngày 12/11/2025 lúc 7:30", "Ngõ 12, số nhà 45",
     "Mã hồ sơ 2025-0012", "Khoảng 1500 hộ dân", "Năm 2026"],
)
def test_numbers_that_are_not_contacts_stay(cfg, text: str) -> None:
    assert readable(cfg, text) == text


def test_subject_is_redacted_too(cfg) -> None:
    text = readable(cfg, "Nội dung", "Nguyễn Văn Bình 0912345678 góp ý")
    assert text.startswith("[tên] [số điện thoại] góp ý")


def test_redaction_kinds_are_switchable_but_the_senders_own_address_goes(make_config) -> None:
    cfg = config.load(make_config(privacy={"redact": ["name"]}))
    text = readable(cfg, "Gọi 0912 345 678, CCCD 001098012345, mail hoa@x.vn hoặc "
                         "binh.nguyenvan1987@gmail.com. Bình")
    assert "0912 345 678" in text and "001098012345" in text and "hoa@x.vn" in text
    assert "binh.nguyenvan1987" not in text
    assert text.endswith("[tên]")
    cfg = config.load(make_config(privacy={"redact": []}))
    assert "Bình" in readable(cfg, "Tôi là Nguyễn Văn Bình")


@pytest.mark.parametrize("filler", ["x", "1", "a.", "ab1.-", "a@b.", "Bình "])
def test_redaction_stays_fast_on_hostile_text(cfg, filler: str) -> None:
    """Quadratic regex backtracking on one long "word" once took a minute per message."""
    import time

    t = time.monotonic()
    readable(cfg, filler * (200_000 // len(filler)))
    assert time.monotonic() - t < 3


# ----- location --------------------------------------------------------------------


def location(cfg: config.Config, headers: dict, subject: str = "") -> tuple[str | None, str]:
    sub = anonymise.anonymise(parsed("x", subject, headers=headers), ref="HT-TEST1",
                              received_on=DAY, config=cfg, pepper=PEPPER)
    return sub.location, sub.text


@pytest.mark.parametrize("header", ["delivered-to", "x-original-to", "to", "cc"])
def test_location_from_plus_address(cfg, header: str) -> None:
    headers = {header: ("Hòm thư <HopThu+TDP3@Phuong.Example.VN>, other@x.vn",)}
    assert location(cfg, headers)[0] == "tdp3"


def test_plus_address_of_another_mailbox_or_unknown_slug_is_no_location(cfg) -> None:
    assert location(cfg, {"to": ("hopthu+tdp3@other.example.vn",)})[0] is None
    assert location(cfg, {"to": ("someone+tdp3@phuong.example.vn",)})[0] is None
    assert location(cfg, {"to": ("hopthu+tdp99@phuong.example.vn",)})[0] is None


def test_location_from_subject_tag_removes_the_tag(cfg) -> None:
    loc, text = location(cfg, {}, "[NVH] Loa phường to quá")
    assert loc == "nvh" and text.startswith("Loa phường to quá")
    loc, text = location(cfg, {}, "Góp ý [xyz] chung")
    assert loc is None and "[xyz]" in text


def test_plus_address_wins_over_subject_tag(cfg) -> None:
    assert location(cfg, {"to": ("hopthu+tdp1@phuong.example.vn",)}, "[tdp3] x")[0] == "tdp1"


# ----- pseudonym and pepper -------------------------------------------------------


def test_pseudonym_is_stable_case_insensitive_and_keyed() -> None:
    a = anonymise.pseudonym("Binh@Gmail.com", PEPPER)
    assert a == anonymise.pseudonym(" binh@gmail.com ", PEPPER)
    assert a.startswith("CD-") and len(a) == 9 and a[3:] == a[3:].upper()
    int(a[3:], 16)
    assert a != anonymise.pseudonym("binh@gmail.com", b"another pepper 32 bytes long....")
    assert a != anonymise.pseudonym("hoa@gmail.com", PEPPER)


def test_pseudonym_comes_from_the_from_address(cfg) -> None:
    sub = anonymise.anonymise(parsed("x", from_="Bình <BINH@gmail.com>"), ref="HT-TEST1",
                              received_on=DAY, config=cfg, pepper=PEPPER)
    assert sub.pseudonym == anonymise.pseudonym("binh@gmail.com", PEPPER)


def test_pepper_is_created_0600_in_a_0700_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "pepper"
    pepper = anonymise.load_pepper(str(path))
    assert len(pepper) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert anonymise.load_pepper(str(path)) == pepper


def test_group_readable_pepper_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pepper"
    path.write_bytes(os.urandom(32))
    path.chmod(0o640)
    with pytest.raises(ConfigError, match=r"privacy\.pepper_file"):
        anonymise.load_pepper(str(path))


def test_unusable_pepper_path_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"privacy\.pepper_file"):
        anonymise.load_pepper(str(blocker / "pepper"))
    short = tmp_path / "short"
    short.write_bytes(b"abc")
    short.chmod(0o600)
    with pytest.raises(ConfigError, match=r"privacy\.pepper_file"):
        anonymise.load_pepper(str(short))


# ----- attachments and the rest --------------------------------------------------


@pytest.mark.parametrize(
    ("ctype", "name", "kind"),
    [
        ("application/pdf", "don.pdf", "PDF"),
        ("application/octet-stream", "Don de nghi.PDF", "PDF"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "a.docx",
         "Word"),
        ("application/msword", "", "Word"),
        ("application/vnd.ms-excel", "bang.xls", "Excel"),
        ("video/mp4", "VID_20261120.mp4", "video"),
        ("video/quicktime", "IMG_0001.MOV", "video"),
        ("audio/mpeg", "ghi-am.mp3", "âm thanh"),
        ("application/zip", "anh.zip", "tệp nén"),
        ("application/x-msdownload", "setup.exe", "tệp chạy được"),
        ("application/octet-stream", "virus.scr", "tệp chạy được"),
        ("application/x-unknown", "", "tệp khác"),
    ],
)
def test_other_attachments_are_withheld_by_kind(cfg, ctype: str, name: str, kind: str) -> None:
    sub = anonymise.anonymise(parsed("x", parts=(Part(ctype, name, b"data"),)),
                              ref="HT-TEST1", received_on=DAY, config=cfg, pepper=PEPPER)
    assert sub.withheld == (kind,) and sub.images == ()


@pytest.mark.parametrize(("kind", "label"), [("PDF", "1 tệp PDF"), ("tệp nén", "1 tệp nén"),
                                             ("ảnh", "1 ảnh"), ("âm thanh", "1 tệp âm thanh")])
def test_withheld_kinds_read_naturally(kind: str, label: str) -> None:
    assert anonymise.describe_withheld(kind) == label


def test_signature_parts_are_not_listed(cfg) -> None:
    part = Part("application/pkcs7-signature", "smime.p7s", b"sig")
    sub = anonymise.anonymise(parsed("x", parts=(part,)), ref="HT-TEST1", received_on=DAY,
                              config=cfg, pepper=PEPPER)
    assert sub.withheld == ()


def test_date_only_and_automatic_pass_through(cfg) -> None:
    p = Parsed(subject="", text="x", parts=(), headers={}, identity=SenderIdentity(),
               automatic=True)
    sub = anonymise.anonymise(p, ref="HT-TEST1", received_on=DAY, config=cfg, pepper=PEPPER)
    assert sub.automatic and sub.received_on == DAY and sub.ref == "HT-TEST1"


def test_every_client_mail_reads_cleanly(cfg) -> None:
    for client in mf.CLIENTS:
        raw = mf.citizen_mail(client, quoted="Thư cũ của phường")
        sub = anonymise.anonymise(parse.parse(raw, cfg.parse), ref="HT-TEST1",
                                  received_on=DAY, config=cfg, pepper=PEPPER)
        assert sub.location == "tdp3", client
        assert "Thư cũ" not in sub.text and "Outlook" not in sub.text, client
        assert "Đèn đường ở ngõ 12 phố Hàng Bông" in sub.text, client
        assert sub.text.endswith("Trân trọng,\n[tên]"), (client, sub.text)


# ----- property tests --------------------------------------------------------------

CHARSETS = ["utf-8", "windows-1258", "iso-8859-1", "utf-16", "koi8-r", "gb2312",
            "us-ascii", "y", "all", "binary", None]
WORDS = st.text(alphabet="aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậềếểễệ ĐÔƯ.,!?\n0123456789",
                max_size=80)
ADDRESS = st.from_regex(r"\A[a-z][a-z0-9]{1,8}([._-][a-z0-9]{1,6})?@[a-z]{2,9}\.(vn|com|com\.vn|net)\Z")
HEADER_VALUE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                       max_size=40)


@st.composite
def mime_tree(draw: st.DrawFn, address: str, depth: int = 0) -> bytes:
    """A MIME entity (headers + body) with the address somewhere in its text, maybe."""
    kind = draw(st.sampled_from(["plain", "html", "binary", "multipart", "message"] if depth < 3
                                else ["plain", "html", "binary"]))
    if kind == "multipart":
        boundary = f"b{depth}{draw(st.integers(0, 9999))}"
        children = draw(st.lists(mime_tree(address, depth + 1), min_size=1, max_size=3))
        sub = draw(st.sampled_from(["mixed", "alternative", "related", "report"]))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + c + b"\r\n" for c in children)
        closing = b"--" + boundary.encode() + b"--\r\n" if draw(st.booleans()) else b""
        return (f"Content-Type: multipart/{sub}; boundary=\"{boundary}\"\r\n\r\n".encode()
                + b"preamble\r\n" + body + closing)  # sometimes unclosed, as broken mail is
    if kind == "message":
        inner = draw(mime_tree(address, depth + 1))
        return (b"Content-Type: message/rfc822\r\n\r\nFrom: x@y.vn\r\nSubject: fwd\r\n"
                + inner)
    if kind == "binary":
        data = draw(st.binary(max_size=64))
        import base64

        return (b"Content-Type: application/octet-stream; name=\"f.bin\"\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data))
    text = f"{draw(WORDS)} {address} {draw(WORDS)}" if draw(st.booleans()) else draw(WORDS)
    # Forwarded mail keeps its body: the planted address in its header block or body must
    # still not come through.
    text = draw(st.sampled_from([
        "", f"---------- Forwarded message ---------\nFrom: {address}\nTo: <{address}>\n\n",
        f"Begin forwarded message:\n\nFrom: X <{address}>\nSubject: {address}\n\n"])) + text
    if kind == "html":
        text = f"<div><p>{text}</p><a href=\"mailto:{address}\">{draw(WORDS)}</a></div>"
    charset = draw(st.sampled_from(CHARSETS))
    codec = charset if charset and anonymise_safe_codec(charset) else "utf-8"
    data = text.encode(codec, errors="replace")
    cte = draw(st.sampled_from(["8bit", "quoted-printable", "base64", None, "7-bit", "x-uue"]))
    if cte == "quoted-printable":
        import quopri

        data = quopri.encodestring(data)
    elif cte == "base64":
        import base64

        data = base64.encodebytes(data)
    params = f"; charset={charset}" if charset else ""
    head = f"Content-Type: text/{kind}{params}\r\n"
    if cte:
        head += f"Content-Transfer-Encoding: {cte}\r\n"
    return head.encode() + b"\r\n" + data


def anonymise_safe_codec(name: str) -> bool:
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


@st.composite
def message(draw: st.DrawFn) -> tuple[bytes, str]:
    address = draw(ADDRESS)
    display = draw(HEADER_VALUE)
    subject = draw(st.sampled_from([
        f"Góp ý {address}", draw(HEADER_VALUE), f"=?utf-8?q?{address}?= re", "",
        f"=?y?q?{address}?=", f"=?windows-1258?b?{_b64(address)}?= x", f"=?utf-8?b?{draw(WORDS)}?="]))
    from_header = draw(st.sampled_from([
        f"{display} <{address}>", address, f"\"{address}\" <{address}>",
        f"=?utf-8?b?{_b64(display)}?= <{address}>"]))
    # Raw 8-bit headers, as UTF-8 or Windows-1258: both occur in the wild.
    to_1258 = draw(st.booleans())

    def eight_bit(text: str) -> bytes:
        if to_1258:
            return mf.to_windows_1258(text.encode("cp1258", "ignore").decode("cp1258"))
        return text.encode("utf-8", "replace")

    headers = (
        b"From: " + eight_bit(from_header) + b"\r\n"
        + b"To: hopthu+tdp3@phuong.example.vn\r\nSubject: "
        + eight_bit(subject) + b"\r\nMIME-Version: 1.0\r\n"
    )
    return headers + draw(mime_tree(address)), address


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(message())
def test_generated_mail_never_leaks_the_planted_address(sample: tuple[bytes, str]) -> None:
    raw, address = sample
    cfg = _hypothesis_config()
    try:
        sub = anonymise.anonymise(parse.parse(raw, cfg.parse), ref="HT-TEST1",
                                  received_on=DAY, config=cfg, pepper=PEPPER)
    except MessageError:
        return
    assert address.lower() not in sub.text.lower()
    assert address.split("@")[0].lower() not in sub.text.lower().split()


_CONFIG: list[config.Config] = []


def _hypothesis_config() -> config.Config:
    """One config for every generated example (function fixtures do not reset per example)."""
    if not _CONFIG:
        _CONFIG.append(config.parse({
            "mailbox": {"address": "hopthu@phuong.example.vn", "name": "Hòm thư"},
            "imap": {"host": "127.0.0.1", "port": 1, "security": "none"},
            "store": {"path": "/nonexistent/store.sqlite3"},
            "privacy": {"public_key_file": "/nonexistent/key", "pepper_file": "/nonexistent/p"},
            "locations": [{"slug": "tdp3", "name": "Tổ dân phố 3"}],
        }, Path("hypothesis.toml")))
    return _CONFIG[0]


def test_processes_creating_the_pepper_at_once_all_get_the_same_whole_one(tmp_path) -> None:
    import subprocess
    import sys

    path = tmp_path / "state" / "pepper"
    code = "import sys; from mailbox_processor import anonymise; " \
           "sys.stdout.write(anonymise.load_pepper(sys.argv[1]).hex())"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=60) for p in procs]

    assert all(p.returncode == 0 for p in procs), [err for _out, err in outs]
    assert len({out for out, _err in outs}) == 1
    assert len(bytes.fromhex(outs[0][0])) == 32
    assert [f.name for f in path.parent.iterdir()] == ["pepper"]
