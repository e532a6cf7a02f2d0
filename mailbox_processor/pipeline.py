"""One message from raw bytes to a committed row: seal, parse, anonymise, classify, store.

A plain loop of stages. Sealing comes first and cannot fail on bad mail, so
whatever happens later the original is kept; any failure after it sends the
message to quarantine, and the run goes on with the next one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from . import anonymise, classify, parse, seal
from .config import Config
from .errors import MessageError
from .models import Parsed, RawMail, Sealed
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What every message needs, loaded once per run."""

    config: Config
    public_key: X25519PublicKey
    pepper: bytes
    lexicon: classify.Lexicon

    @classmethod
    def load(cls, config: Config) -> Context:
        return cls(
            config=config,
            public_key=seal.load_public(config.privacy.public_key_file),
            pepper=anonymise.load_pepper(config.privacy.pepper_file),
            lexicon=classify.load_lexicon(config.classify.categories_file),
        )


@dataclass(frozen=True)
class Outcome:
    ref: str
    duplicate: bool = False
    quarantined: bool = False
    urgency: str | None = None
    # Kept in memory only, for the acknowledgement; never stored or logged.
    parsed: Parsed | None = None


def local_date(moment: dt.datetime, tz: str) -> dt.date:
    return moment.astimezone(ZoneInfo(tz)).date()


def process(raw: RawMail, store: Store, ctx: Context) -> Outcome:
    """Store one message exactly once (as a submission, in quarantine, or as a known duplicate)."""
    sha = hashlib.sha256(raw.data).hexdigest()
    hit = store.known(raw.folder, raw.uidvalidity, raw.uid) or (
        store.by_hash(sha) if raw.complete else None
    )
    if hit:
        ref, quarantined = hit
        store.record_duplicate(raw.folder, raw.uidvalidity, raw.uid, ref)
        log.info("uid %s: already stored as %s", raw.uid, ref)
        return Outcome(ref=ref, duplicate=True, quarantined=quarantined)

    ref = store.new_ref()
    sealed = seal.seal(raw.data, seal.identity_of(raw.data), ref, ctx.public_key)
    received_on = local_date(raw.received, ctx.config.mailbox.timezone)
    try:
        if not raw.complete:
            raise MessageError("too-large", f"{raw.size} bytes")
        parsed = parse.parse(raw.data, ctx.config.parse)
        submission = anonymise.anonymise(
            parsed, ref=ref, received_on=received_on, config=ctx.config, pepper=ctx.pepper
        )
        classification = classify.classify(submission, ctx.lexicon)
    except MessageError as e:
        return _quarantine(raw, store, sealed, received_on, e)
    except Exception as e:
        log.error("uid %s (%s): unexpected %s at %s", raw.uid, ref, type(e).__name__, _where(e))
        return _quarantine(raw, store, sealed, received_on, MessageError("internal", type(e).__name__))

    store.record_submission(
        raw.folder, raw.uidvalidity, raw.uid, raw.size, sealed, submission, classification
    )
    log.info(
        "uid %s: stored %s (%s, %s)", raw.uid, ref, classification.category, classification.urgency
    )
    return Outcome(ref=ref, urgency=classification.urgency, parsed=parsed)


def _quarantine(
    raw: RawMail, store: Store, sealed: Sealed, received_on: dt.date, error: MessageError
) -> Outcome:
    store.record_quarantine(raw.folder, raw.uidvalidity, raw.uid, raw.size, sealed, received_on, error)
    # The kind only: a library's message may quote the header or body that tripped it.
    log.warning("uid %s: quarantined as %s (%s)", raw.uid, sealed.ref, error.kind)
    return Outcome(ref=sealed.ref, quarantined=True)


def _where(e: BaseException) -> str:
    """file:line of the innermost frame: enough to find the bug, without the exception's text."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
