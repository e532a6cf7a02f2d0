"""Retention: after `[retention] days`, the sealed originals go, here and on the server.

The store drops the seals (and with `--all` the readable copies) of mail
received before the cutoff; then the copies in the IMAP Processed and
Quarantine folders are found by content hash and deleted. Matching by hash,
not by a remembered UID: the hash is already stored for deduplication, it
survives a UIDVALIDITY change or a server migration, and the intake code
needs no change. INTERNALDATE (which MOVE and COPY keep) narrows what must
be downloaded to the messages old enough to be candidates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .config import Config
from .errors import ConfigError, TransientError
from .imap import Mailbox, batches
from .store import Store

log = logging.getLogger(__name__)

ALL_UIDS = 2**32 - 1  # the largest UID IMAP allows
META_CHUNK = 1000
DAY = 24 * 3600.0
RETRY_AFTER_FAILURE = 3600.0


@dataclass(frozen=True)
class Report:
    cutoff: dt.date
    sealed: int  # seals dropped in this run
    readable: bool  # readable copies dropped too (--all)
    imap_deleted: int


def cutoff_for(config: Config, days: int, today: dt.date | None = None) -> dt.date:
    """Mail received before this local date is older than `days` days."""
    today = today or dt.datetime.now(ZoneInfo(config.mailbox.timezone)).date()
    return today - dt.timedelta(days=days)


Progress = Callable[[str, int, int], None]  # folder, old messages checked, old messages


def purge(config: Config, store: Store, days: int, everything: bool = False,
          on_progress: Progress = lambda _f, _done, _total: None) -> Report:
    """Drop what is older than `days`: in the store first (local, certain), then on IMAP.

    An IMAP failure raises TransientError after the store part is done; running
    again finishes the job, because the hashes of purged mail stay in the store.
    With `everything` the order is reversed, since the hashes go with the rest.
    """
    cutoff = cutoff_for(config, days)
    if everything:
        # --all forgets the hashes too: the server copies must go first, while they are known.
        deleted = purge_imap(config, store.hashes_before(cutoff), cutoff, on_progress)
        refs = store.purge(cutoff, everything)
    else:
        refs = store.purge(cutoff, everything)
        deleted = purge_imap(config, store.hashes_before(cutoff), cutoff, on_progress)
    for ref in refs:
        log.info("%s: sealed original purged", ref)
    return Report(cutoff=cutoff, sealed=len(refs), readable=everything, imap_deleted=deleted)


def purge_imap(config: Config, hashes: dict[str, str], cutoff: dt.date,
               on_progress: Progress) -> int:
    """Delete, in Processed and Quarantine, the messages whose content hash is in `hashes`."""
    if not hashes:
        return 0
    c = config.imap
    folders = [c.quarantine_folder]
    if c.after_processing == "move":
        folders.insert(0, c.processed_folder)
    # Midnight of the cutoff day, local time: nothing newer can be a candidate.
    before = dt.datetime.combine(cutoff, dt.time(0), ZoneInfo(config.mailbox.timezone))
    mailbox = Mailbox.connect(config)
    try:
        return sum(_purge_folder(mailbox, folder, hashes, before, on_progress) for folder in folders)
    finally:
        mailbox.close()


def _purge_folder(mailbox: Mailbox, folder: str, hashes: dict[str, str], before: dt.datetime,
                  on_progress: Progress) -> int:
    mailbox.folder = folder
    mailbox.select()
    limit = mailbox.config.imap.max_message_bytes
    uids = mailbox.uids_up_to(ALL_UIDS)
    old: dict[int, int] = {}  # uid → size
    for i in range(0, len(uids), META_CHUNK):
        for uid, meta in mailbox.meta(uids[i : i + META_CHUNK]).items():
            if meta.received < before:
                old[uid] = meta.size
    doomed: list[int] = []
    done = 0
    for batch in batches(sorted(old), old, 50):
        for uid, data in _contents(mailbox, batch, old, limit).items():
            ref = hashes.get(hashlib.sha256(data).hexdigest())
            if ref is not None:
                doomed.append(uid)
                log.info("%s: deleting uid %s from %s", ref, uid, folder)
        done += len(batch)
        on_progress(folder, done, len(old))
    mailbox.finish(sorted(doomed), None)
    return len(doomed)


def _contents(mailbox: Mailbox, batch: list[int], sizes: dict[int, int], limit: int) -> dict[int, bytes]:
    """What intake hashed: the whole message, or only the header of one too large to fetch."""
    small = [u for u in batch if sizes[u] <= limit]
    data = mailbox.fetch(small)
    for uid in batch:
        if sizes[uid] > limit:
            data[uid] = mailbox.fetch_header(uid)
    return data


class DailyPurge:
    """A daemon hook: purge once soon after start, then every 24 hours, in a thread.

    The first purge of a large mailbox downloads every old message to hash it,
    which can take many minutes; intake and urgent alerts must not wait for it.
    The thread has its own store and IMAP connections (SQLite in WAL mode takes
    a second writer; `purge` from the command line runs beside `run` the same
    way). It never pings the watchdog: that is the intake loop's proof of life.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._next = 0.0
        self._thread: threading.Thread | None = None
        self._failure: TransientError | None = None

    def __call__(self, _store: Store) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure  # the daemon logs it; the next try is an hour away
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + RETRY_AFTER_FAILURE
        self._thread = threading.Thread(target=self._run, args=(now,), name="daily-purge",
                                        daemon=True)
        self._thread.start()

    def _run(self, started: float) -> None:
        try:
            store = Store.open(self.config.store.path)
            try:
                report = purge(self.config, store, self.config.retention.days)
            finally:
                store.close()
        except (TransientError, ConfigError) as e:
            self._failure = TransientError(f"daily purge: {e}")
            return
        except sqlite3.Error as e:  # the store busy or broken: retried in an hour like the rest
            self._failure = TransientError(f"daily purge: store: {type(e).__name__}")
            return
        self._next = started + DAY
        log.info("daily purge: %d seal(s) dropped, %d IMAP message(s) deleted (before %s)",
                 report.sealed, report.imap_deleted, report.cutoff)

    def finish(self, timeout: float) -> None:
        """At a stop: let a purge that is under way end cleanly, up to `timeout` seconds
        (an unfinished one loses nothing: its store part is one transaction, and the
        next purge finds what is left on the server by hash)."""
        if self._thread is not None:
            self._thread.join(timeout)
