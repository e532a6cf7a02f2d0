"""Parsed → Submission: the readable copy, built from an allow-list.

Nothing is copied from the headers except what the allow-list names: the
location tag and, kept only in a keyed hash, the sender address. The text is
the subject and the citizen's own words — quoted replies and phone-client
signatures cut, the sender's name and typed contacts replaced by visible
markers. Photos are rebuilt from pixels (images.py); every other attachment
is listed by kind only and stays in the seal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

from . import images
from .config import Config
from .errors import ConfigError, MessageError
from .models import Image, Parsed, Part, Submission
from .parse import addresses
from .vietnamese import fold_chars as fold

log = logging.getLogger(__name__)

PEPPER_BYTES = 32
MAX_IMAGES = 20  # more than a citizen sends; each decode costs CPU
# A citizen writes a few thousand characters; past this the rest stays in the seal
# only, which also bounds the time redaction can take on hostile input.
MAX_TEXT_CHARS = 100_000

MARK_NAME = "[tên]"
MARK_EMAIL = "[email]"
MARK_PHONE = "[số điện thoại]"
MARK_ID = "[số giấy tờ]"


# ----- pepper -------------------------------------------------------------------


def load_pepper(path: str) -> bytes:
    """The HMAC key for pseudonyms; created (32 random bytes, 0600) when missing."""
    p = Path(path)
    where = f"privacy.pepper_file {p}"
    try:
        if not p.exists():
            _create_pepper(p)
        mode = p.stat().st_mode
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{where}: cannot create or read: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Anyone who can read the pepper can test a guessed address against a pseudonym.
        raise ConfigError(f"{where} is readable by group or others; run: chmod 600 {p}")
    if len(data) < 16:
        raise ConfigError(f"{where} holds {len(data)} bytes; it needs at least 16 random bytes")
    return data


def _create_pepper(p: Path) -> None:
    """Write it whole under a temporary name, then link it into place: two processes
    starting at once (a drain and its workers, or `init`) never see a partial pepper,
    and the second one uses the first one's."""
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(PEPPER_BYTES))
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, p)
        log.info("created a new pepper file for pseudonyms")
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


# ----- the stage ------------------------------------------------------------------


def anonymise(
    parsed: Parsed, *, ref: str, received_on: dt.date, config: Config, pepper: bytes
) -> Submission:
    """The readable copy of one parsed message; MessageError is the only failure."""
    try:
        return _anonymise(parsed, ref, received_on, config, pepper)
    except RecursionError:
        raise MessageError("too-deep", "while anonymising") from None
    except Exception as e:
        # A bug met on hostile input: quarantine this message, say where, quote nothing.
        log.warning("%s: anonymise failed with %s at %s", ref, type(e).__name__, _where(e))
        raise MessageError("anonymise", type(e).__name__) from None


def _where(e: BaseException) -> str:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else "?"


def _anonymise(
    parsed: Parsed, ref: str, received_on: dt.date, config: Config, pepper: bytes
) -> Submission:
    location = _plus_location(parsed, config)
    subject, tagged = _strip_subject_tag(parsed.subject, config)
    body = clean_body(parsed.text[:MAX_TEXT_CHARS], forwarded=bool(FORWARD_SUBJECT.match(subject)))
    text = "\n\n".join(t for t in (subject.strip(), body) if t)
    text = redact(text, _sender_terms(parsed), config.privacy.redact)
    photos, withheld = _attachments(parsed.parts, ref)
    log.debug("%s: %d photo(s), %d withheld file(s)", ref, len(photos), len(withheld))
    return Submission(
        ref=ref,
        received_on=received_on,
        location=location or tagged,
        text=text,
        pseudonym=pseudonym(sender_address(parsed), pepper),
        images=photos,
        withheld=withheld,
        automatic=parsed.automatic,
    )


def sender_address(parsed: Parsed) -> str:
    ident = parsed.identity
    for header in (ident.from_, ident.sender, ident.reply_to, ident.return_path):
        for _name, addr in addresses([header]):
            if "@" in addr:
                return addr
    return ""


def pseudonym(address: str, pepper: bytes) -> str:
    normal = unicodedata.normalize("NFC", address.strip().lower())
    mac = hmac.new(pepper, normal.encode("utf-8"), hashlib.sha256).hexdigest()
    return "CD-" + mac[:6].upper()


# ----- location -------------------------------------------------------------------

LOCATION_HEADERS = ("delivered-to", "x-original-to", "to", "cc")
SUBJECT_TAG = re.compile(r"\[\s*([A-Za-z0-9-]{1,40})\s*\]")


def _plus_location(parsed: Parsed, config: Config) -> str | None:
    """The slug of `hopthu+SLUG@domain` (the mailbox's own address) in a recipient header."""
    local, _, domain = config.mailbox.address.lower().partition("@")
    for name in LOCATION_HEADERS:
        for _display, addr in addresses(parsed.headers.get(name, ())):
            a_local, _, a_domain = addr.strip().lower().partition("@")
            base, plus, slug = a_local.partition("+")
            if plus and base == local and a_domain == domain and config.location(slug):
                return slug
    return None


def _strip_subject_tag(subject: str, config: Config) -> tuple[str, str | None]:
    """Remove every `[slug]` that names a configured location; return the first."""
    found: list[str] = []

    def replace(m: re.Match[str]) -> str:
        slug = m.group(1).lower()
        if config.location(slug):
            found.append(slug)
            return ""
        return m.group(0)

    stripped = SUBJECT_TAG.sub(replace, subject)
    return " ".join(stripped.split()), (found[0] if found else None)


# ----- quotes and signatures ------------------------------------------------------

# A line that starts a quoted earlier message; everything from it on is cut.
QUOTE_START = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^-{2,}\s*(original message|tin nhắn gốc|thư gốc)\s*-{2,}\s*$",
        r"^_{10,}\s*$",  # Outlook's rule above its From:/Sent: block
    )
]
# A forwarded message is what the citizen chose to send us (a notice, a neighbour's
# complaint): its body stays, only the marker and the forwarded header block go.
FORWARD_START = re.compile(
    r"^(-{2,}\s*(forwarded message|thư chuyển tiếp|tin nhắn đã chuyển tiếp)\s*-{2,}"
    r"|begin forwarded message:|bắt đầu thư được chuyển tiếp:)\s*$",
    re.IGNORECASE,
)
# Outlook forwards under the same rule and From:/Sent: block as its replies; only the
# subject tells them apart (FW:, Fwd:, and Outlook's Vietnamese "CT:" for chuyển tiếp).
FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|fw|ct|chuyển tiếp|tr|wg|rv|enc)\s*:", re.IGNORECASE)
FORWARD_HEADER = re.compile(
    r"^\*?(from|từ|date|ngày|sent|đã gửi|subject|tiêu đề|chủ đề|to|đến|tới|cc|reply-to)"
    r"\s*:", re.IGNORECASE,
)
# "On … wrote:" / "Vào … đã viết:", possibly wrapped over up to three lines; Yahoo
# prefixes "--- ", Android mail starts with the date ("02.04.2012 14:20 …").
ATTRIBUTION_START = re.compile(
    r"^(-{2,3}\s*)?(on|vào|le|am|el|il)\s|^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}[ ,]", re.IGNORECASE
)
ATTRIBUTION_END = re.compile(
    r"(wrote|đã viết|viết|a écrit|schrieb|escribió|ha scritto|написал\(?а?\)?)\s*:\s*$",
    re.IGNORECASE,
)
# Outlook's header block: From:/Từ: followed by Sent:/Date:/Đã gửi:/Ngày: and To:/Đến:.
BLOCK_FROM = re.compile(r"^\*?(from|từ)\s*:\*?\s", re.IGNORECASE)
# A real block has both a when-line and a to-line; a petition's "Từ: … Địa chỉ: …" has not.
BLOCK_SENT = re.compile(r"^\*?(sent|date|đã gửi|ngày gửi|ngày)\s*:", re.IGNORECASE)
BLOCK_TO = re.compile(r"^\*?(to|đến|tới|gửi tới|gửi đến)\s*:", re.IGNORECASE)
DEVICE = (
    r"(my )?(iphone|ipad|android|samsung|galaxy|mobile|smartphone|blackberry|huawei|xiaomi|"
    r"oppo|vivo|nokia|yahoo|outlook|gmail|aol|mail|windows|điện thoại|thiết bị|di động|"
    r"iphone của tôi|ipad của tôi)"
)
SIGNATURE_LINES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"^sent (from|with|via|using) .{{0,40}}{DEVICE}.{{0,60}}$",
        rf"^(được |đã )?gửi (từ|bằng|qua) .{{0,40}}{DEVICE}.{{0,60}}$",
        r"^(get|download|tải|nhận|tải xuống) (outlook|yahoo mail|gmail).{0,40}$",
        r"^(sent|gửi) (from|từ) (yahoo|outlook|gmail|mail)\b.{0,60}$",
        r"^(samsung|galaxy|iphone|android) .{0,40}(smartphone|device|thiết bị|điện thoại)\.?$",
    )
]


def clean_body(text: str, *, forwarded: bool = False) -> str:
    """The citizen's own words: quoted replies, signature blocks and client footers removed;
    in a forwarded message (by its subject) the first quoted block is what was forwarded."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = _cut_quoted(lines, forwarded)
    kept = [ln for ln in lines if not ln.lstrip().startswith(">")]
    kept = _cut_signature_block(kept)
    kept = [ln.rstrip() for ln in kept if not _is_client_footer(ln)]
    out = "\n".join(kept).strip()
    return re.sub(r"\n{3,}", "\n\n", out)


def _cut_quoted(lines: list[str], forwarded: bool) -> list[str]:
    i = 0
    while i < len(lines):
        s = lines[i].strip()
        marker = any(p.match(s) for p in QUOTE_START)
        block = not marker and BLOCK_FROM.match(s) is not None and _outlook_block_at(lines, i)
        if forwarded and (marker or block):
            forwarded = False  # the forwarded message itself; its own history is cut below
            lines = lines[:i] + _skip_forward_headers(lines[i + 1 if marker else i :])
            continue
        if marker or block:
            return lines[:i]
        if FORWARD_START.match(s):
            lines = lines[:i] + _skip_forward_headers(lines[i + 1 :])
            continue
        span = _attribution_at(lines, i)
        if span:
            rest = [ln for ln in lines[i + span :] if ln.strip()]
            if not rest or not rest[0].lstrip().startswith(">"):
                return lines[:i]  # top-posted: everything below is the earlier message
            # Interleaved or bottom-posted ("> …" then the reply): drop just this line;
            # the "> " lines go later, the citizen's own words stay.
            lines = lines[:i] + lines[i + span :]
            continue
        i += 1
    return lines


def _skip_forward_headers(lines: list[str]) -> list[str]:
    """The lines after a forward marker without the From:/Date:/To: block heading them."""
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    while i < len(lines) and FORWARD_HEADER.match(lines[i].strip()):
        i += 1
    return lines[i:]


def _attribution_at(lines: list[str], i: int) -> int:
    """How many lines the attribution starting at line i spans (0: none)."""
    if not ATTRIBUTION_START.match(lines[i].strip()):
        return 0
    joined = ""
    for n, line in enumerate(lines[i : i + 3], start=1):
        joined = f"{joined} {line.strip()}".strip()
        if len(joined) > 400:
            return 0
        if ATTRIBUTION_END.search(joined):
            return n
    return 0


def _outlook_block_at(lines: list[str], i: int) -> bool:
    following = [ln.strip() for ln in lines[i + 1 : i + 8] if ln.strip()][:4]
    return any(BLOCK_SENT.match(ln) for ln in following) and any(
        BLOCK_TO.match(ln) for ln in following
    )


def _cut_signature_block(lines: list[str]) -> list[str]:
    """Cut at the last "-- " separator (RFC 3676), which begins a signature."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i] in ("-- ", "--"):
            return lines[:i]
    return lines


def _is_client_footer(line: str) -> bool:
    s = line.strip()
    return bool(s) and len(s) <= 120 and any(p.match(s) for p in SIGNATURE_LINES)


# ----- redaction ------------------------------------------------------------------

# The look-behind lets a match start only where a run of address characters
# starts: without it a 50 000-letter "word" costs minutes (quadratic backtracking).
EMAIL = re.compile(
    r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]+(?:@|\s*\(at\)\s*|\s*\[at\]\s*)"
    r"[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"
)
# CMND (9 digits) and CCCD (12 digits), also typed in groups of three or four.
ID_NUMBER = re.compile(
    r"(?<![\d.,])(?:\d{12}|\d{9}|\d{3}[ .-]\d{3}[ .-]\d{3}[ .-]\d{3}|\d{4}[ .-]\d{4}[ .-]\d{4}|"
    r"\d{3}[ .-]\d{3}[ .-]\d{3})(?![\d,]|\.\d)"
)
MIN_LOCAL_PART = 3
MIN_SINGLE_NAME = 4
# Vietnamese middle names and very common syllables: alone they name nobody,
# and redacting them would destroy ordinary words (văn hóa, thị trường).
COMMON_NAME_WORDS = frozenset({
    "văn", "thị", "đức", "hữu", "công", "quang", "ngọc", "minh", "thanh", "xuân", "thu",
    "kim", "bảo", "gia", "anh", "thành", "phú", "quốc", "trung", "hồng", "hoàng", "đình",
    "duy", "mạnh", "tiến",
})


@dataclass(frozen=True)
class SenderTerms:
    """What the headers say about the sender, to find it again in the text."""

    names: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    local_parts: tuple[str, ...] = ()


def _sender_terms(parsed: Parsed) -> SenderTerms:
    ident = parsed.identity
    names: list[str] = []
    found: list[str] = []
    local_parts: list[str] = []
    for header in (ident.from_, ident.sender, ident.reply_to, ident.return_path):
        for display, addr in addresses([header]):
            display = " ".join(display.replace('"', " ").split())
            if display and "@" not in display:
                names.append(display)
            if "@" in addr:
                found.append(addr)
                local = addr.partition("@")[0]
                if len(local) >= MIN_LOCAL_PART:
                    local_parts.append(local)
    return SenderTerms(tuple(names), tuple(found), tuple(local_parts))


def redact(text: str, sender: SenderTerms, kinds: tuple[str, ...]) -> str:
    """Replace identifiers by markers. The sender's own address always goes: it is not
    a contact the citizen chose to type, and `kinds` only switches typed contacts."""
    # Most of a sender's terms are not in most texts: a substring test on one folded
    # copy saves building two regexes per term (most of this stage's time otherwise).
    haystack = fold(text).lower()

    def mentioned(term: str) -> bool:
        words = term.split()
        return bool(words) and fold(words[0]).lower() in haystack

    if "email" in kinds:
        text = EMAIL.sub(MARK_EMAIL, text)
    for term in sorted({*sender.addresses, *sender.local_parts}, key=len, reverse=True):
        if mentioned(term):
            text = replace_term(text, term, MARK_EMAIL, ignore_case=True)
    if "phone" in kinds:
        # Before ID numbers: "+84 912.345.678" also looks like a grouped CMND.
        text = _redact_phones(text)
    if "id" in kinds:
        text = ID_NUMBER.sub(MARK_ID, text)
    if "name" in kinds:
        for name in sender.names:
            text = _redact_name(text, unicodedata.normalize("NFC", name), mentioned)
    return text


def _redact_phones(text: str) -> str:
    matches = list(
        phonenumbers.PhoneNumberMatcher(text, "VN", leniency=phonenumbers.Leniency.VALID)
    )
    for m in reversed(matches):
        text = text[: m.start] + MARK_PHONE + text[m.end :]
    return text


def name_variants(name: str) -> list[str]:
    """The full name, its runs of two or more words, and its distinctive single words."""
    words = name.split()
    runs = {" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 2, len(words) + 1)}
    singles = [
        w for w in words if len(w) >= MIN_SINGLE_NAME and w.lower() not in COMMON_NAME_WORDS
    ]
    return sorted(runs, key=len, reverse=True) + singles


def _redact_name(text: str, name: str, mentioned: Callable[[str], bool]) -> str:
    for variant in filter(mentioned, name_variants(name)):
        # Runs of words match in any case; a single word only as written (a capitalised
        # name), so that "Minh" goes but "thông minh" stays.
        text = replace_term(text, variant, MARK_NAME, ignore_case=" " in variant)
    return _redact_sign_off(text, name)


def _redact_sign_off(text: str, name: str) -> str:
    """A last line that is just one of the sender's name words ("An", "- Lan") is a signature."""
    lines = text.rstrip().split("\n")
    last = lines[-1].strip().lstrip("-–— ").rstrip(".")
    if last and fold(last).lower() in {fold(w).lower() for w in name.split()}:
        lines[-1] = MARK_NAME
    return "\n".join(lines)


def replace_term(text: str, term: str, marker: str, *, ignore_case: bool) -> str:
    """Every whole-word occurrence of term, as written or typed without accents.

    An unaccented match counts only where the text itself has no accents: folded,
    "vẫn an" would collide with the name "Văn An" (see NOTES on accent folding).
    """
    words = term.split()
    if not words:
        return text
    flags = re.IGNORECASE if ignore_case else 0
    exact = re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)", flags)
    text = exact.sub(marker, text)
    folded_words = [fold(w) for w in words]
    if folded_words == words:
        return text
    loose = re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, folded_words)) + r"(?!\w)", flags)
    folded = fold(text)
    for m in reversed(list(loose.finditer(folded))):
        if text[m.start() : m.end()] == m.group(0):  # typed without accents
            text = text[: m.start()] + marker + text[m.end() :]
    return text


# ----- attachments ----------------------------------------------------------------

KINDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # (label, content-type fragments, file extensions)
    ("PDF", ("pdf",), (".pdf",)),
    ("Word", ("msword", "wordprocessingml", "opendocument.text", "rtf"),
     (".doc", ".docx", ".odt", ".rtf", ".docm")),
    ("Excel", ("excel", "spreadsheetml", "opendocument.spreadsheet", "csv"),
     (".xls", ".xlsx", ".ods", ".csv", ".xlsm")),
    ("PowerPoint", ("powerpoint", "presentationml", "opendocument.presentation"),
     (".ppt", ".pptx", ".odp")),
    ("tệp chạy được", ("msdownload", "executable", "x-msdos", "x-sh", "javascript",
                       "vbscript", "java-archive", "android.package", "x-msi"),
     (".exe", ".bat", ".cmd", ".com", ".scr", ".js", ".vbs", ".msi", ".apk", ".jar",
      ".ps1", ".sh", ".dll", ".lnk", ".hta")),
    ("tệp nén", ("zip", "rar", "7z", "gzip", "x-tar", "compressed", "x-bzip"),
     (".zip", ".rar", ".7z", ".gz", ".tgz", ".tar", ".bz2", ".xz")),
    ("video", ("video/",), (".mp4", ".mov", ".avi", ".mkv", ".3gp", ".webm")),
    ("âm thanh", ("audio/",), (".mp3", ".m4a", ".wav", ".ogg", ".amr", ".aac", ".opus")),
    ("thư đính kèm", ("message/rfc822",), (".eml",)),
    ("ảnh", ("image/",), (".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".gif",
                          ".bmp", ".tif", ".tiff")),
    ("văn bản", ("text/",), (".txt",)),
)
IMAGE_TYPES = ("image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/heic",
               "image/heif", "image/heic-sequence", "image/webp", "image/gif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".gif")
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
# Parts that are part of the mail's machinery rather than something the citizen attached.
IGNORED_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature",
                 "application/pgp-signature", "message/delivery-status",
                 "message/disposition-notification", "text/rfc822-headers")


def describe_withheld(kind: str) -> str:
    """'1 tệp PDF', '1 tệp nén', '1 ảnh': one withheld file as a reader sees it."""
    if kind.startswith(("tệp ", "ảnh", "thư ")):
        return f"1 {kind}"
    return f"1 tệp {kind}"


def kind_of(part: Part) -> str:
    ctype, name = part.content_type.lower(), part.filename.lower().strip()
    for label, _fragments, extensions in KINDS:
        if name.endswith(extensions):
            return label
    for label, fragments, _extensions in KINDS:
        if any(f in ctype for f in fragments):
            return label
    return "tệp khác"


def _looks_like_image(part: Part) -> bool:
    name = part.filename.lower().strip()
    if part.content_type in IMAGE_TYPES or name.endswith(IMAGE_EXTENSIONS):
        return True
    # Some clients label photos application/octet-stream: sniff the magic bytes.
    head = part.payload[:16]
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8")) or (
        (head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS)
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    )


def _attachments(parts: tuple[Part, ...], ref: str) -> tuple[tuple[Image, ...], tuple[str, ...]]:
    photos: list[Image] = []
    withheld: list[str] = []
    for part in parts:
        if part.content_type in IGNORED_TYPES or not part.payload:
            continue
        if _looks_like_image(part) and len(photos) < MAX_IMAGES:
            try:
                photos.append(images.scrub(part.payload, len(photos) + 1))
                continue
            except images.Unreadable as e:
                log.info("%s: a photo was withheld (%s)", ref, e)
                withheld.append("ảnh")
                continue
        withheld.append(kind_of(part))
    return tuple(photos), tuple(withheld)
