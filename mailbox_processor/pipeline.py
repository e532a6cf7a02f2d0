"""One message from raw bytes to a committed row: parse, anonymise, classify, seal, store.

A plain line of stages in two halves. `attempt` makes the readable copy and
may fail on bad mail; it touches nothing, so it can run in a worker process.
`commit` seals the original — which cannot fail on bad mail — and stores it
with the readable copy, or in quarantine with the reason, in one transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import sqlite3
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from . import anonymise, classify, parse, seal
from .config import Config
from .errors import MessageError
from .models import Classification, Parsed, RawMail, Sealed, Submission
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


@dataclass(frozen=True)
class Readable:
    """The readable copy of one message, as a worker makes it."""

    submission: Submission
    classification: Classification
    # Headers and identity for the acknowledgement; attachment bytes dropped.
    parsed: Parsed


def process(raw: RawMail, store: Store, ctx: Context) -> Outcome:
    """One message, start to finish, in this process (the daemon spreads the middle
    step over worker processes; see workers.py)."""
    known = duplicate(raw, store)
    if known:
        return known
    ref = store.new_ref()
    return commit(raw, ref, attempt(raw, ref, ctx), store, ctx)


def stored_as(raw: RawMail, store: Store) -> tuple[str, bool] | None:
    """(ref, quarantined) of a message already stored, by its UID or, whatever the UID, by
    its bytes (for mail too large to download, the bytes of its header, as stored)."""
    return store.known(raw.folder, raw.uidvalidity, raw.uid) or store.by_hash(
        hashlib.sha256(raw.data).hexdigest()
    )


def record_duplicate(raw: RawMail, hit: tuple[str, bool], store: Store) -> Outcome:
    ref, quarantined = hit
    store.record_duplicate(raw.folder, raw.uidvalidity, raw.uid, ref)
    log.info("uid %s: already stored as %s", raw.uid, ref)
    return Outcome(ref=ref, duplicate=True, quarantined=quarantined)


def duplicate(raw: RawMail, store: Store) -> Outcome | None:
    hit = stored_as(raw, store)
    return record_duplicate(raw, hit, store) if hit else None


def attempt(raw: RawMail, ref: str, ctx: Context) -> Readable | MessageError:
    """parse → anonymise → classify, or why not. Touches no store: runs in a worker."""
    try:
        if not raw.complete:
            raise MessageError("too-large", f"{raw.size} bytes")
        with parse.time_limit(ctx.config.parse.max_seconds):
            parsed = parse.parse(raw.data, ctx.config.parse)
            submission = anonymise.anonymise(
                parsed, ref=ref, received_on=local_date(raw.received, ctx.config.mailbox.timezone),
                config=ctx.config, pepper=ctx.pepper,
            )
            classification = classify.classify(submission, ctx.lexicon)
    except MessageError as e:
        return e
    except Exception as e:  # a bug on one message must not stop the others
        log.error("uid %s (%s): unexpected %s at %s", raw.uid, ref, type(e).__name__, _where(e))
        return MessageError("internal", type(e).__name__)
    return Readable(submission, classification, dataclasses.replace(parsed, parts=()))


def commit(raw: RawMail, ref: str, result: Readable | MessageError, store: Store,
           ctx: Context) -> Outcome:
    """Seal the original and store it with its readable copy (or in quarantine), at once."""
    sealed = seal.seal(raw.data, seal.identity_of(raw.data), ref, ctx.public_key)
    try:
        if isinstance(result, MessageError):
            return _quarantine(raw, store, sealed, ctx, result)
        s, k = result.submission, result.classification
        store.record_submission(raw.folder, raw.uidvalidity, raw.uid, raw.size, sealed, s, k)
    except sqlite3.IntegrityError:
        # The same bytes twice in one batch: the first copy was committed meanwhile.
        known = duplicate(raw, store)
        if known is None:
            raise
        return known
    log.info("uid %s: stored %s (%s, %s)", raw.uid, ref, k.category, k.urgency)
    return Outcome(ref=ref, urgency=k.urgency, parsed=result.parsed)


def _quarantine(raw: RawMail, store: Store, sealed: Sealed, ctx: Context,
                error: MessageError) -> Outcome:
    received_on = local_date(raw.received, ctx.config.mailbox.timezone)
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
