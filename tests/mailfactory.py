"""Realistic citizen mail, built with the stdlib email package, with planted identifiers.

Each client reproduces the header set and MIME shape its real counterpart sends
(iPhone Mail, Gmail for Android, Outlook for iOS, Yahoo Mail, Samsung Email and
a desktop client writing Windows-1258 with combining tone marks). Every value
that could identify the sender comes from `PLANTED`, so a test can check that
none of it reaches anything readable.

    raw = citizen_mail("iphone", body="Đèn đường hỏng.", photo=photo_jpeg())
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from email import encoders, quoprimime
from email.charset import BASE64, QP, Charset
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart

from PIL import Image


@dataclass(frozen=True)
class Planted:
    """Identifiers a message carries; none may reach the readable side."""

    name: str = "Nguyễn Văn Bình"
    address: str = "binh.nguyenvan1987@gmail.com"
    local_part: str = "binh.nguyenvan1987"
    ipv4: str = "203.113.172.45"
    ipv6: str = "2405:4802:1d2:a0b0::17"
    hostname: str = "adsl-203-113-172-45.hanoi.vnpt.vn"
    message_id: str = "CAF3x9Zq7hJ2kQ7wLmN0p5tR8@mail.gmail.com"
    mailer: str = "iPhone Mail (21F90)"
    dkim_b: str = "Kq3vX9mZp2LrT8sW4yB6nC1dE5fG7hJ0"
    thread_index: str = "AdkZr3c9QmLwPz8TR0a9bXcYdE1fGh=="
    make: str = "Apple"
    model: str = "iPhone 14 Pro Max"
    serial: str = "F2LXK9QW7DNP"
    phone: str = "0912 345 678"
    phone_intl: str = "+84 912.345.678"
    id_number: str = "001098012345"
    filename: str = "IMG_4821.JPG"
    gps_text: str = "21.0285"  # written to EXIF as rationals; checked absent as text too

    def strings(self) -> list[str]:
        """Every planted value as it might appear as text."""
        digits = self.phone.replace(" ", "")
        return [
            self.name, self.address, self.local_part, self.ipv4, self.ipv6, self.hostname,
            self.message_id, self.message_id.split("@")[0], self.mailer, "21F90", self.dkim_b,
            self.thread_index, self.model, self.serial, self.phone, digits, self.phone_intl,
            self.id_number, self.filename, self.filename.rsplit(".", 1)[0],
        ]


PLANTED = Planted()
MAILBOX = "hopthu@phuong.example.vn"
DEFAULT_TO = "hopthu+tdp3@phuong.example.vn"
DEFAULT_BODY = (
    "Kính gửi Ủy ban phường,\n\n"
    "Đèn đường ở ngõ 12 phố Hàng Bông đã hỏng hơn hai tuần, buổi tối rất tối và nguy hiểm "
    "cho người đi bộ. Đề nghị phường cho sửa sớm.\n\n"
    f"Số điện thoại của tôi: {PLANTED.phone}, CCCD {PLANTED.id_number}.\n"
    f"Có thể liên hệ {PLANTED.address} hoặc {PLANTED.phone_intl}.\n\n"
    f"Trân trọng,\n{PLANTED.name}"
)
DEFAULT_SUBJECT = "Góp ý về đèn đường ngõ 12"

SIGNATURES = {
    "iphone": "Được gửi từ iPhone của tôi",
    "gmail-android": "",
    "outlook-ios": "Tải Outlook cho iOS",
    "yahoo": "Đã gửi từ Yahoo Mail trên Android",
    "samsung": "Đã gửi từ điện thoại thông minh Samsung Galaxy của tôi.",
    "desktop-1258": "",
}
CLIENTS = tuple(SIGNATURES)


def citizen_mail(
    client: str = "iphone",
    *,
    body: str = DEFAULT_BODY,
    subject: str = DEFAULT_SUBJECT,
    from_: tuple[str, str] = (PLANTED.name, PLANTED.address),
    to: str = DEFAULT_TO,
    photo: bytes | None = None,
    photo_name: str = PLANTED.filename,
    attachments: tuple[tuple[str, str, bytes], ...] = (),
    quoted: str = "",
    encoding: str | None = None,
    signature: str | None = None,
) -> bytes:
    """One message as `client` would send it.

    attachments: (content type, file name, bytes). quoted: earlier text to quote
    under the client's own attribution line. encoding: "8bit", "qp" or "base64"
    for the text part (default: what the client uses). signature: replaces the
    client's footer ("" for none).
    """
    if client not in SIGNATURES:
        raise ValueError(f"unknown client {client!r}; one of {CLIENTS}")
    footer = SIGNATURES[client] if signature is None else signature
    text = body + (f"\n\n{footer}" if footer else "") + _quote(client, quoted)
    builder = {
        "iphone": _iphone, "gmail-android": _gmail, "outlook-ios": _outlook,
        "yahoo": _yahoo, "samsung": _samsung, "desktop-1258": _desktop,
    }[client]
    files = list(attachments)
    if photo is not None:
        files.insert(0, ("image/jpeg", photo_name, photo))
    msg = builder(text, encoding, files)
    _envelope(msg, client, subject, from_, to)
    # CRLF, as an IMAP server hands the message over.
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


# ----- clients --------------------------------------------------------------------


def _iphone(text: str, encoding: str | None, files: list) -> MIMEBase:
    body = _text("plain", text, encoding or "qp")
    if not files:
        body["X-Mailer"] = PLANTED.mailer
        return body
    outer = MIMEMultipart("mixed", boundary="Apple-Mail-7B1F2C4D-9E8A-4F3B-A1C2-5D6E7F8091A2")
    outer.attach(body)
    for ctype, name, data in files:
        outer.attach(_file(ctype, name, data, disposition="inline"))
    outer["X-Mailer"] = PLANTED.mailer
    return outer


def _gmail(text: str, encoding: str | None, files: list) -> MIMEBase:
    alt = MIMEMultipart("alternative", boundary="000000000000a1b2c3d405f1e2d3c4")
    alt.attach(_text("plain", text, encoding or "8bit"))
    alt.attach(_text("html", _html(text, '<div dir="ltr">'), encoding or "qp"))
    outer: MIMEBase = alt
    if files:
        outer = MIMEMultipart("mixed", boundary="000000000000b2c3d4e505f1e2d3c5")
        outer.attach(alt)
        for ctype, name, data in files:
            outer.attach(_file(ctype, name, data))
    outer["DKIM-Signature"] = (
        "v=1; a=rsa-sha256; c=relaxed/relaxed; d=gmail.com; s=20230601; t=1763600102; "
        f"x=1764204902; h=to:subject:message-id:date:from:mime-version; bh=Zk2p8Qx; "
        f"b={PLANTED.dkim_b}"
    )
    outer["X-Gm-Message-State"] = f"AOJu0Yw{PLANTED.dkim_b[:12]}"
    return outer


def _outlook(text: str, encoding: str | None, files: list) -> MIMEBase:
    alt = MIMEMultipart("alternative", boundary="_000_SG2PR06MB5310A1B2C3D4E5F6_")
    alt.attach(_text("plain", text, encoding or "qp"))
    alt.attach(_text("html", _html(text, '<div dir="ltr" style="font-family:Aptos">'),
                     encoding or "qp"))
    outer: MIMEBase = alt
    if files:
        outer = MIMEMultipart("mixed", boundary="_004_SG2PR06MB5310A1B2C3D4E5F6_")
        outer.attach(alt)
        for ctype, name, data in files:
            outer.attach(_file(ctype, name, data))
    outer["Thread-Topic"] = "Góp ý"
    outer["Thread-Index"] = PLANTED.thread_index
    outer["X-Originating-IP"] = f"[{PLANTED.ipv4}]"
    outer["X-MS-Exchange-Organization-AuthSource"] = "SG2PR06MB5310.apcprd06.prod.outlook.com"
    return outer


def _yahoo(text: str, encoding: str | None, files: list) -> MIMEBase:
    alt = MIMEMultipart("alternative", boundary="----=_Part_1234567_890123456.1763600102345")
    alt.attach(_text("plain", text, encoding or "qp"))
    alt.attach(_text("html", _html(text, '<div class="ydp3f1e2d3cyahoo-style-wrap">'),
                     encoding or "qp"))
    outer: MIMEBase = alt
    if files:
        outer = MIMEMultipart("mixed", boundary="----=_Part_1234566_890123455.1763600102344")
        outer.attach(alt)
        for ctype, name, data in files:
            outer.attach(_file(ctype, name, data))
    outer["X-Mailer"] = "WebService/1.1.24652 YMailNorrin"
    return outer


def _samsung(text: str, encoding: str | None, files: list) -> MIMEBase:
    """Samsung Email sends HTML only, base64: the HTML→text path."""
    html = _text("html", _html(text, '<div dir="auto">'), encoding or "base64")
    if not files:
        return html
    outer = MIMEMultipart("mixed", boundary="--_com.samsung.android.email_98765432109876")
    outer.attach(html)
    for ctype, name, data in files:
        outer.attach(_file(ctype, name, data))
    return outer


def _desktop(text: str, encoding: str | None, files: list) -> MIMEBase:
    """Outlook Express style: Windows-1258, 8-bit, tone marks as combining characters."""
    part = MIMENonMultipart("text", "plain")
    part.set_param("charset", "windows-1258")
    part["Content-Transfer-Encoding"] = "8bit"
    part.set_payload(to_windows_1258(text).decode("ascii", "surrogateescape"))
    part["X-Mailer"] = "Microsoft Outlook Express 6.00.2900.5512"
    part["X-MimeOLE"] = "Produced By Microsoft MimeOLE V6.00.2900.5512"
    if not files:
        return part
    outer = MIMEMultipart("mixed", boundary="----=_NextPart_000_0007_01DB3A2B.C4D5E6F0")
    outer.attach(part)
    for ctype, name, data in files:
        outer.attach(_file(ctype, name, data))
    return outer


# ----- pieces ---------------------------------------------------------------------


def _envelope(msg: MIMEBase, client: str, subject: str, from_: tuple[str, str], to: str) -> None:
    """The transport headers, in the order a receiving server leaves them."""
    headers = [
        ("Return-Path", f"<{from_[1]}>"),
        ("Delivered-To", to),
        ("Received", f"from {PLANTED.hostname} ({PLANTED.hostname} [{PLANTED.ipv4}])\r\n"
                     "\tby mx.phuong.example.vn (Postfix) with ESMTPS id 4XyZ1\r\n"
                     "\tfor <hopthu@phuong.example.vn>; Fri, 20 Nov 2026 08:15:02 +0700"),
        ("Received", f"from [IPv6:{PLANTED.ipv6}] ([{PLANTED.ipv6}])\r\n"
                     "\tby smtp.gmail.com with ESMTPSA id a1b2c3; "
                     "Fri, 20 Nov 2026 08:15:01 +0700"),
    ]
    display = _encode_word(from_[0], client)
    name = f"{display} <{from_[1]}>" if from_[0] else from_[1]
    headers += [
        ("From", name),
        ("To", to),
        ("Subject", _encode_word(subject, client)),
        ("Date", "Fri, 20 Nov 2026 08:15:00 +0700"),
        ("Message-ID", f"<{PLANTED.message_id}>"),
        ("MIME-Version", "1.0 (1.0)" if client == "iphone" else "1.0"),
    ]
    existing = [(k, v) for k, v in msg.items() if k.lower() != "mime-version"]
    for key in list(msg.keys()):
        del msg[key]
    for key, value in headers + existing:
        msg[key] = value


def _encode_word(text: str, client: str) -> str:
    """An RFC 2047 encoded word: Windows-1258 Q-encoding for the desktop client, else UTF-8."""
    if client == "desktop-1258":
        # The stdlib's Header cannot encode Windows-1258's combining tones: do it by hand.
        return quoprimime.header_encode(to_windows_1258(text), charset="windows-1258")
    return Header(text, "utf-8").encode()


def _text(subtype: str, text: str, encoding: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype)
    cs = Charset("utf-8")
    if encoding == "8bit":
        part.set_payload(text.encode("utf-8").decode("ascii", "surrogateescape"))
        part.set_param("charset", "utf-8")
        part["Content-Transfer-Encoding"] = "8bit"
        return part
    cs.body_encoding = QP if encoding == "qp" else BASE64
    part.set_payload(text, charset=cs)
    return part


def _html(text: str, opening: str) -> str:
    import html

    paragraphs = "".join(
        f"<div>{html.escape(p).replace(chr(10), '<br>')}</div><div><br></div>"
        for p in text.split("\n\n")
    )
    return f"<html><head><meta charset=\"utf-8\"></head><body>{opening}{paragraphs}</div></body></html>"


def _file(ctype: str, name: str, data: bytes, disposition: str = "attachment") -> MIMEBase:
    maintype, subtype = ctype.split("/", 1)
    part = MIMEBase(maintype, subtype, name=name)
    part.set_payload(data)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", disposition, filename=name)
    part.add_header("Content-Id", f"<{name}@{PLANTED.hostname}>")
    return part


def _quote(client: str, quoted: str) -> str:
    if not quoted:
        return ""
    lines = "\n".join(f"> {ln}" for ln in quoted.split("\n"))
    if client in ("outlook-ios", "desktop-1258"):
        return (
            "\n\n________________________________\n"
            f"Từ: {PLANTED.name} <{PLANTED.address}>\n"
            "Đã gửi: Thứ Năm, ngày 19 tháng 11 năm 2026 20:10\n"
            f"Đến: {MAILBOX}\nChủ đề: Góp ý\n\n{quoted}"
        )
    # Gmail wraps its Vietnamese attribution line after the name.
    return (
        f"\n\nVào Th 5, 19 thg 11, 2026 vào lúc 20:10 {PLANTED.name} <\n"
        f"{PLANTED.address}> đã viết:\n\n{lines}"
    )


# ----- Windows-1258 ---------------------------------------------------------------

TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"


def to_windows_1258(text: str) -> bytes:
    """Encode as Windows-1258 does: base letters (ă, ơ, ư…) precomposed, tones combining."""
    out = bytearray()
    for c in unicodedata.normalize("NFC", text):
        try:
            out += c.encode("windows-1258")
            continue
        except UnicodeEncodeError:
            pass
        decomposed = unicodedata.normalize("NFD", c)
        base = unicodedata.normalize("NFC", "".join(ch for ch in decomposed if ch not in TONE_MARKS))
        tones = "".join(ch for ch in decomposed if ch in TONE_MARKS)
        out += (base + tones).encode("windows-1258")
    return bytes(out)


def jpeg_markers(data: bytes) -> list[int]:
    """The marker of every JPEG segment before the image data (APP0 = 0xE0, APP1 = 0xE1…)."""
    import struct

    assert data[:2] == b"\xff\xd8", "not a JPEG"
    markers, i = [], 2
    while i < len(data):
        assert data[i] == 0xFF, "not a marker"
        marker = data[i + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: compressed data follows
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return markers


# ----- photos ---------------------------------------------------------------------


def _pixels(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A photo-like image: a gradient, so JPEG has something to encode."""
    img = Image.linear_gradient("L").resize(size)
    rgb = Image.merge("RGB", (img, img.rotate(90).resize(size), img.transpose(0)))
    return rgb.convert(mode) if mode != "RGB" else rgb


def exif_block(orientation: int = 6) -> Image.Exif:
    """Make, model, serial, GPS and orientation, as a phone camera writes them."""
    exif = Image.Exif()
    exif[0x010F] = PLANTED.make
    exif[0x0110] = PLANTED.model
    exif[0x0131] = "17.5.1"  # Software
    exif[0x0112] = orientation
    ifd = exif.get_ifd(0x8769)  # Exif IFD
    ifd[0xA431] = PLANTED.serial  # BodySerialNumber
    ifd[0xA434] = f"{PLANTED.model} back triple camera 6.86mm f/1.78"  # LensModel
    ifd[0x9003] = "2026:11:20 08:14:55"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (21.0, 1.0, 42.6)
    gps[3] = "E"
    gps[4] = (105.0, 51.0, 7.2)
    return exif


def photo_jpeg(size: tuple[int, int] = (320, 240), orientation: int = 6) -> bytes:
    """A JPEG with EXIF (device, serial, GPS), an XMP packet, an ICC profile and a comment."""
    out = io.BytesIO()
    options: dict[str, object] = {
        "exif": exif_block(orientation).tobytes(),
        "icc_profile": b"\x00\x00\x02\x0cICC-profile-for-" + PLANTED.serial.encode(),
        "comment": f"{PLANTED.model} {PLANTED.serial}",
        "xmp": (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description '
                f'tiff:Model="{PLANTED.model}" exif:GPSLatitude="{PLANTED.gps_text}"/>'
                "</x:xmpmeta>").encode(),
    }
    _pixels(size).save(out, format="JPEG", quality=90, **options)
    return out.getvalue()


def photo_png_alpha(size: tuple[int, int] = (200, 120)) -> bytes:
    """A PNG with transparency, an ICC profile and a text chunk naming the device."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Model", PLANTED.model)
    info.add_text("Comment", PLANTED.serial)
    img = _pixels(size, "RGBA")
    img.putalpha(128)
    out = io.BytesIO()
    img.save(out, format="PNG", pnginfo=info, exif=exif_block(1).tobytes(),
             icc_profile=b"icc-" + PLANTED.serial.encode())
    return out.getvalue()


def photo_webp(size: tuple[int, int] = (200, 120)) -> bytes:
    out = io.BytesIO()
    _pixels(size).save(out, format="WEBP", exif=exif_block(1).tobytes())
    return out.getvalue()


def photo_gif(size: tuple[int, int] = (120, 80)) -> bytes:
    out = io.BytesIO()
    frames = [_pixels(size).convert("P"), _pixels(size).rotate(180).convert("P")]
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:],
                   comment=PLANTED.serial.encode())
    return out.getvalue()


def photo_heic(size: tuple[int, int] = (256, 192)) -> bytes | None:
    """A HEIC with EXIF, or None when pillow-heif cannot encode here."""
    try:
        import pillow_heif
    except ImportError:
        return None
    try:
        pillow_heif.register_heif_opener()
        out = io.BytesIO()
        _pixels(size).save(out, format="HEIF", exif=exif_block(6).tobytes(), quality=80)
        return out.getvalue()
    except Exception:
        return None
