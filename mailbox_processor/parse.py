"""Raw bytes → Parsed: headers decoded, body text chosen, other parts kept for anonymise.py.

Mail from phones and old desktop clients is messy: wrong or missing charsets,
Windows-1258 with combining tone marks, 8-bit headers, broken MIME. Every
string leaves this module NFC-normalised. The work per message is bounded
(nesting depth, number of parts, decoded size, wall time) and every failure
becomes a MessageError whose detail never quotes the message.

The stdlib parser builds the tree first so the bounds are checked before
mail-parser walks it; mail-parser then classifies body text and attachments.
"""

from __future__ import annotations

import binascii
import codecs
import email.errors
import email.feedparser
import email.header
import email.message
import email.parser
import email.policy
import email.utils
import logging
import re
import signal
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from email.utils import getaddresses

import charset_normalizer
import inscriptis
import mailparser

from .config import Parse
from .errors import MessageError
from .models import Headers, Parsed, Part, SenderIdentity

log = logging.getLogger(__name__)

# mail-parser logs attachment file names at DEBUG and undecodable header values
# at ERROR: none of it may reach our logs. A level above CRITICAL means its
# records are never even made, whatever handlers an operator attaches.
logging.getLogger("mailparser").setLevel(logging.CRITICAL + 1)

AUTOMATIC_SENDERS = ("mailer-daemon", "postmaster")


class _Timeout(BaseException):
    """Raised from the SIGALRM handler; never leaves this module.

    A BaseException, so that no library's `except Exception` can swallow it.
    """


def parse(raw: bytes, limits: Parse) -> Parsed:
    """Understand one message within the limits, or raise MessageError."""
    try:
        with _deadline(limits.max_seconds):
            return _parse(raw, limits)
    except _Timeout:
        raise MessageError("timeout", f"over {limits.max_seconds:g} s") from None
    except MessageError:
        raise
    except RecursionError:
        raise MessageError("too-deep", "recursion limit") from None
    except MemoryError:
        raise MessageError("too-large", "out of memory") from None
    except Exception as e:  # library failure on hostile input
        # The type only: a library's message may quote the header that broke it.
        raise MessageError("parse", type(e).__name__) from None


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """MessageError("timeout") when the work inside takes longer (main thread only).

    The pipeline puts the whole readable copy under it — image scrubbing and redaction
    can be slow on hostile input too — and parse() bounds itself for direct callers.
    """
    try:
        with _deadline(seconds):
            yield
    except _Timeout:
        raise MessageError("timeout", f"over {seconds:g} s") from None


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """A SIGALRM timer in the main thread; elsewhere no timer (signals need the main thread)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _Timeout

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        except _Timeout:
            # It fired just as the work ended: the work is done, keep its result.
            signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay:
            # Give back whatever was left of a timer someone else had set.
            left = max(old_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


FEED_CHUNK = 64 * 1024


def _parse(raw: bytes, limits: Parse) -> Parsed:
    if len(raw) > limits.max_decoded_bytes:
        raise MessageError("too-large", f"{len(raw)} bytes")
    msg = _message(raw)
    _check_shape(msg, limits)
    if log.isEnabledFor(logging.DEBUG):  # its findings are only ever logged at DEBUG
        _library_check(msg)
    headers = _headers(msg)
    subject = headers.get("subject", ("",))[0]
    return Parsed(
        subject=_one_line(subject),
        text=_body_text(msg),
        parts=_parts(msg),
        headers=headers,
        identity=_identity(headers),
        automatic=_automatic(headers, msg),
    )


def _library_check(msg: email.message.Message) -> None:
    """mail-parser's structural pass over the bounded tree: defects logged by category only.

    Its own text decoding falls back to UTF-8 only, so body text and parts are
    read below with this module's charset fallback instead.
    """
    try:
        parser = mailparser.MailParser(msg)
    except Exception as e:
        # 4.8.0 raises AttributeError on nested or unclosed boundaries. The
        # stdlib tree is already built and bounded, and the text below comes
        # from it, so the citizen's message is still read rather than quarantined.
        log.debug("mail-parser failed (%s); reading the stdlib tree only", type(e).__name__)
        return
    if parser.has_defects:
        log.debug("MIME defects: %s", ", ".join(sorted(parser.defects_categories)))


def _message(raw: bytes) -> email.message.Message:
    """The stdlib's tree of the message, fed in chunks.

    BytesParser.parsebytes decodes the whole message to one string and splits it
    into lines at once: 164 MB at peak for a 21 MB message, against 58 MB fed
    64 KiB at a time (benchmarks/drain.py measures the whole process).
    """
    parser = email.feedparser.BytesFeedParser(policy=email.policy.compat32)
    view = memoryview(raw)
    for start in range(0, len(raw), FEED_CHUNK):
        parser.feed(bytes(view[start : start + FEED_CHUNK]))
    return parser.close()


def _decoded_size(part: email.message.Message, payload: object) -> int:
    """What a leaf decodes to, estimated from its encoded length without decoding it."""
    size = len(payload) if isinstance(payload, str | bytes) else 0
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    return size * 3 // 4 if cte == "base64" else size


def _check_shape(msg: email.message.Message, limits: Parse) -> None:
    """Depth, part count and decoded size, walked without recursion."""
    stack: list[tuple[email.message.Message, int]] = [(msg, 0)]
    parts = 0
    decoded = 0
    while stack:
        part, depth = stack.pop()
        parts += 1
        if depth > limits.max_depth:
            raise MessageError("too-deep", f"depth over {limits.max_depth}")
        if parts > limits.max_parts:
            raise MessageError("too-many-parts", f"over {limits.max_parts}")
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((p, depth + 1) for p in payload if isinstance(p, email.message.Message))
        else:
            decoded += _decoded_size(part, payload)
            if decoded > limits.max_decoded_bytes:
                raise MessageError("too-large", f"decoded over {limits.max_decoded_bytes}")


# ----- text decoding ----------------------------------------------------------


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Text from bytes in whatever charset they really are, NFC-normalised."""
    for charset in _candidates(declared):
        try:
            return nfc(data.decode(charset))
        except (LookupError, UnicodeError, ValueError):
            continue
    best = charset_normalizer.from_bytes(data).best()
    if best is not None:
        return nfc(str(best))
    # Windows-1258 maps almost every byte: the last resort for unlabelled Vietnamese mail.
    return nfc(data.decode("windows-1258", errors="replace"))


# Single-byte charsets that decode any bytes at all, so a wrong label never fails:
# phones and webmail that label UTF-8 as one of these would give mojibake. Real text
# in them is practically never valid UTF-8, so UTF-8 is tried first.
PERMISSIVE_CODECS = frozenset({"ascii", "iso8859-1", "iso8859-15", "cp1252", "cp1258"})


def _candidates(declared: str | None) -> Iterator[str]:
    name = (declared or "").strip().strip('"').strip("'").lower()
    codec = _text_codec(name) if name else None
    if codec is None or codec in PERMISSIVE_CODECS:
        yield "utf-8"
    if codec is not None:
        yield name


def _text_codec(name: str) -> str | None:
    """The codec's canonical name, or None for unknown names and bytes-to-bytes codecs."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    return info.name if info._is_text_encoding else None  # type: ignore[attr-defined]


# Control characters a citizen's text has no use for, which would drive the terminal
# of whoever runs `show` (escape sequences: window title, clipboard) or reorder what
# leaders read (bidi overrides). Tabs and newlines stay; CR LF becomes LF.
_CONTROLS = dict.fromkeys(
    [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0D, 0x20), *range(0x7F, 0xA0),
     *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def nfc(text: str) -> str:
    # Surrogates from undecodable header bytes would break every UTF-8 sink later.
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = text.replace("\r\n", "\n").translate(_CONTROLS)
    return unicodedata.normalize("NFC", text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def decode_header_value(value: object) -> str:
    """An RFC 2047 / 8-bit header value to NFC text."""
    if isinstance(value, email.header.Header):
        chunks = email.header.decode_header(value)
    else:
        raw = str(value)
        if any("\udc80" <= c <= "\udcff" for c in raw):
            # 8-bit bytes the stdlib kept as surrogates: decode them as text first.
            raw = decode_bytes(raw.encode("ascii", "surrogateescape"))
        chunks = email.header.decode_header(raw) if "=?" in raw else [(raw, None)]
    out: list[str] = []
    previous: str | None = None
    for i, (chunk, charset) in enumerate(chunks):
        if isinstance(chunk, bytes):
            # Unencoded runs come back as raw-unicode-escape bytes, encoded words as their charset.
            chunk = chunk.decode("raw-unicode-escape") if charset is None else decode_bytes(
                chunk, charset
            )
        # decode_header drops the space between an encoded word and plain text; two
        # adjacent encoded words were one run of text split for line length.
        if i and (charset is None) != (previous is None):
            out.append(" ")
        out.append(chunk)
        previous = charset
    # A header is one line: folding whitespace and doubled spaces carry nothing.
    return nfc(" ".join("".join(out).split()))


def _headers(msg: email.message.Message) -> Headers:
    headers: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        try:
            decoded = decode_header_value(value)
        except (email.errors.HeaderParseError, ValueError, LookupError):
            decoded = nfc(str(value))
        headers.setdefault(str(name).strip().lower(), []).append(decoded.strip())
    return {k: tuple(v) for k, v in headers.items()}


# ----- body and parts ---------------------------------------------------------


def _is_body_candidate(part: email.message.Message) -> bool:
    if part.is_multipart() or part.get_content_type() not in ("text/plain", "text/html"):
        return False
    return part.get_content_disposition() != "attachment" and not part.get_filename()


def _leaves(msg: email.message.Message) -> Iterator[email.message.Message]:
    """Leaf parts outside attached messages (a forwarded mail is an attachment, not the body)."""
    stack = [msg]
    while stack:
        part = stack.pop()
        payload = part.get_payload()
        if isinstance(payload, list):
            if part.get_content_type() != "message/rfc822" or part is msg:
                stack.extend(reversed([p for p in payload if isinstance(p, email.message.Message)]))
        else:
            yield part


def _decoded_text(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_param("charset"))  # type: ignore[arg-type]


def _body_text(msg: email.message.Message) -> str:
    """text/plain when there is any, else the HTML converted to text."""
    plain: list[str] = []
    html: list[str] = []
    for part in _leaves(msg):
        if _is_body_candidate(part):
            target = plain if part.get_content_type() == "text/plain" else html
            target.append(_decoded_text(part))
    text = "\n".join(t for t in plain if t.strip())
    if not text.strip() and html:
        text = "\n".join(html_to_text(h) for h in html if h.strip())
    return nfc(text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def html_to_text(html: str) -> str:
    try:
        text = inscriptis.get_text(html)
    except Exception:  # unparseable HTML: no text rather than markup
        return ""
    # inscriptis indents nested blocks; mail clients nest <div>s for every paragraph.
    return "\n".join(line.strip() for line in text.split("\n"))


def _parts(msg: email.message.Message) -> tuple[Part, ...]:
    """Every non-text part (attachments, inline files, attached messages), decoded."""
    out: list[Part] = []
    stack = [msg]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type().lower()
        payload = part.get_payload()
        if ctype == "message/rfc822" and part is not msg:
            out.append(Part(ctype, _filename(part), _as_bytes(payload)))
        elif isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, email.message.Message)]))
        elif not _is_body_candidate(part):
            out.append(Part(ctype, _filename(part), _decoded(part, payload)))
    return tuple(out)


def _decoded(part: email.message.Message, payload: object) -> bytes:
    """A leaf's bytes. Base64 is decoded straight from the string: the stdlib's
    get_payload(decode=True) takes about six times the attachment's size on the way."""
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64" and isinstance(payload, str):
        try:
            return binascii.a2b_base64(payload)
        except (binascii.Error, ValueError):
            pass  # bad padding or 8-bit bytes: the stdlib's lenient decoder below
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _filename(part: email.message.Message) -> str:
    name = part.get_filename() or part.get_param("name") or ""
    if isinstance(name, tuple):  # RFC 2231 (charset, language, value)
        name = email.utils.collapse_rfc2231_value(name)
    try:
        return decode_header_value(name)
    except Exception:  # the name only guesses a kind; none is fine
        return ""


def _as_bytes(payload: object) -> bytes:
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, email.message.Message):
        return b""
    try:
        return inner.as_bytes()
    except Exception:  # withheld by kind only; the bytes stay in the seal
        return b""


# ----- identity and automatic mail -------------------------------------------

# An address header is read for at most this much: the corpus's header bomb has
# a To: of 130 KB that sends the stdlib's recursive address parser past its limit.
MAX_ADDRESS_HEADER = 4096
_ADDR_SPEC = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")


def addresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs from address headers, never raising.

    When the stdlib parser gives up, bare addr-specs are still found, so the
    caller can redact and locate with what it gets.
    """
    out: list[tuple[str, str]] = []
    for value in values:
        value = value[:MAX_ADDRESS_HEADER]
        try:
            out += getaddresses([value])
        except (RecursionError, ValueError, IndexError, TypeError, AttributeError):
            out += [("", a) for a in _ADDR_SPEC.findall(value)]
    return out


def _identity(headers: Headers) -> SenderIdentity:
    def first(name: str) -> str:
        return headers.get(name, ("",))[0]

    return SenderIdentity(
        from_=first("from"),
        sender=first("sender"),
        reply_to=first("reply-to"),
        return_path=first("return-path"),
    )


def _automatic(headers: Headers, msg: email.message.Message) -> bool:
    """Bounces, delivery reports and auto-replies (RFC 3834 and the common vendor headers)."""
    auto = [v.lower() for v in headers.get("auto-submitted", ())]
    if any(v and not v.startswith("no") for v in auto):
        return True
    if msg.get_content_type() == "multipart/report":
        return True
    if headers.get("x-autoreply") or headers.get("x-autorespond"):
        return True
    if any(v.lower().strip() == "auto_reply" for v in headers.get("precedence", ())):
        return True
    return_path = headers.get("return-path", ())
    if any(v.strip().replace(" ", "") == "<>" for v in return_path):
        return True
    for name in ("from", "return-path"):
        for _display, addr in addresses(headers.get(name, ())):
            if addr.split("@")[0].lower() in AUTOMATIC_SENDERS:
                return True
    return False
