"""Frozen data passed between the pipeline's stages.

The stages are: imap.py → RawMail; parse.py → Parsed; seal.py → Sealed;
anonymise.py → Submission; classify.py → Classification; store.py.

`Submission` deliberately has no field that could hold a sender, a recipient,
a header or a Message-ID: whatever identifies the citizen stops at `Parsed`
and the seal, so a leak after anonymising is a type error, not a review
comment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# Header name (lower case) → every value of it, decoded to str, in order.
Headers = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class RawMail:
    """One message as the IMAP server holds it, byte for byte."""

    folder: str
    uidvalidity: int
    uid: int
    data: bytes
    # INTERNALDATE from the server, UTC: when the mailbox received it.
    received: dt.datetime
    size: int  # RFC822.SIZE as the server reported it
    # False when the message was too large to download: `data` holds only its header.
    complete: bool = True


@dataclass(frozen=True)
class SenderIdentity:
    """Who sent a message, as the headers claim. Only ever sealed, never stored readable."""

    from_: str = ""
    sender: str = ""
    reply_to: str = ""
    return_path: str = ""

    def reply_address(self) -> str:
        """Where a reply to the citizen goes (Reply-To wins over From)."""
        from email.utils import getaddresses

        for header in (self.reply_to, self.from_, self.sender):
            try:
                pairs = getaddresses([header[:4096]])  # a header bomb recurses in the stdlib
            except (RecursionError, ValueError):
                continue
            for _name, addr in pairs:
                if "@" in addr:
                    return addr
        return ""


@dataclass(frozen=True)
class Sealed:
    """The original message and sender identity, encrypted to the offline archive key."""

    ref: str
    blob: bytes
    sha256: str  # hex SHA-256 of the raw message bytes (deduplication key)


@dataclass(frozen=True)
class Part:
    """A non-text MIME part (attachment or inline file), still untrusted."""

    content_type: str  # lower case, e.g. "image/jpeg"
    filename: str  # as the sender named it; never stored, used only to guess the kind
    payload: bytes


@dataclass(frozen=True)
class Parsed:
    """What parse.py understood of a message. Still carries identity: never stored."""

    subject: str  # decoded, NFC
    text: str  # body text (text/plain preferred, else HTML converted), NFC
    parts: tuple[Part, ...]
    headers: Headers  # every header, decoded; anonymise.py reads a few, stores none
    identity: SenderIdentity
    # The message is a bounce, delivery report or auto-reply (Auto-Submitted,
    # multipart/report, mailer-daemon): decided here, before headers are dropped.
    automatic: bool = False


@dataclass(frozen=True)
class Image:
    """A photo rebuilt from its pixels: no metadata, a neutral name."""

    name: str  # "anh-1.jpg", ...
    content_type: str
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Submission:
    """The readable, anonymised copy. Nothing here may identify the sender."""

    ref: str
    received_on: dt.date  # the date only; the exact time stays in the seal
    location: str | None  # slug from [[locations]], or None
    text: str  # subject + body, quotes and signatures removed, identifiers redacted
    pseudonym: str  # e.g. "CD-4F9A2C": HMAC of the sender address under the pepper
    images: tuple[Image, ...] = ()
    # Kinds of attachments kept only in the seal, e.g. ("PDF", "Word").
    withheld: tuple[str, ...] = ()
    automatic: bool = False


@dataclass(frozen=True)
class Classification:
    category: str  # slug from shared/eval/taxonomy.md
    urgency: str  # "khan" | "som" | "thuong"
    confidence: float  # 0..1
    flags: frozenset[str] = field(default_factory=frozenset)  # spam, auto, empty, abuse
    cues: tuple[str, ...] = ()  # the phrases that decided it, for the digest


URGENCIES = ("khan", "som", "thuong")
FLAGS = ("spam", "auto", "empty", "abuse")
STATUSES = ("new", "forwarded", "answered", "closed")
