"""Draining the mailbox: once (`fetch --once`) or for ever (`run`).

The order of work is what keeps promise 1: a message is committed to the
store (with the mailbox state) before it is moved on the server, so a crash
at any point either leaves it in the inbox to be fetched again — and then
recognised by its UID or content hash — or has it stored already.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import click

from . import ack, alerts, pipeline, retention
from .config import Config
from .errors import ConfigError, MessageError, TransientError
from .imap import Mailbox, Meta, batches
from .models import RawMail
from .sdnotify import Notifier
from .store import Store
from .workers import Workers

log = logging.getLogger(__name__)

BACKOFF_START = 2.0
BACKOFF_CAP = 300.0  # five minutes
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HOOK_SECONDS = 30.0
PURGE_STOP_SECONDS = 10.0  # well inside systemd's TimeoutStopSec


@dataclass
class Summary:
    """Counts of one drain (or of the daemon's life so far)."""

    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0

    def add(self, outcome: pipeline.Outcome) -> None:
        if outcome.duplicate:
            self.duplicates += 1
        elif outcome.quarantined:
            self.quarantined += 1
        else:
            self.stored += 1

    def merge(self, other: Summary) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined

    def line(self) -> str:
        return (f"stored {self.stored}, duplicates {self.duplicates}, "
                f"quarantined {self.quarantined}")


M_MMAP_THRESHOLD = -3


def return_big_buffers() -> None:
    """Have glibc hand every buffer over 1 MiB straight back to the system when freed.

    A 20 MB message passes through several transient copies (IMAP literal, pickle for
    a worker, the seal). glibc's default raises its mmap threshold after the first such
    free, so later copies land on the heap and stay resident: 201 MB peak RSS for one
    20 MB message with the default, 162 MB with a fixed threshold (benchmarks/drain.py).
    """
    with suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 1024 * 1024)


@contextmanager
def single_instance(config: Config, job: str = "intake") -> Iterator[None]:
    """One process at a time per store and job: two drains would race on the same UIDs,
    and two `digest send` runs would both send the pending digest."""
    path = Path(config.store.path + (".lock" if job == "intake" else f".{job}.lock"))
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as e:
        raise ConfigError(f"{config.path}: store.path {config.store.path}: cannot create "
                          f"the lock file: {e.strerror}") from None
    with os.fdopen(fd, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TransientError(
                f"another mailbox-processor is already doing {job} on this store ({path})"
            ) from None
        yield


def drain(
    mailbox: Mailbox,
    store: Store,
    ctx: pipeline.Context,
    stop: threading.Event,
    on_message: Callable[[pipeline.Outcome], None] = lambda _o: None,
    on_total: Callable[[int], None] = lambda _n: None,
    workers: Workers | None = None,
) -> Summary:
    """Store every message waiting in the folder, then move each on the server.

    Without `workers` the readable copies are made in this process.
    """
    c = ctx.config.imap
    summary = Summary()
    uidvalidity = mailbox.select()
    state = store.state(mailbox.folder)
    last_uid = state[1] if state and state[0] == uidvalidity else 0
    if state and state[0] != uidvalidity:
        log.warning("%s: UIDVALIDITY changed (%s → %s); matching by content hash",
                    mailbox.folder, state[0], uidvalidity)

    # Committed earlier but not moved (a crash between commit and move): just move them.
    # Anything else still below the last UID goes through intake like new mail (the
    # content hash keeps that safe): nothing in the inbox is ever passed over.
    unknown = _finish_known(mailbox, store, mailbox.uids_up_to(last_uid), uidvalidity)

    new = unknown + mailbox.uids_above(last_uid)
    on_total(len(new))
    # One batch ahead: the next one is fetched and handed to the workers while this
    # one is committed and moved, so neither the workers nor the connection wait.
    ahead: _Batch | None = None
    for batch, meta in _all_batches(mailbox, new, c.batch_size, c.max_message_bytes):
        taken = {ref for _raw, _hit, ref in ahead.entries} if ahead else set()
        following = _dispatch(mailbox, store, ctx, workers, batch, meta, uidvalidity, taken)
        if ahead:
            summary.merge(_finish(mailbox, store, ctx, ahead, stop, on_message))
            if stop.is_set():
                return summary  # `following` was not committed: it stays in the inbox
        ahead = following
    if ahead:
        summary.merge(_finish(mailbox, store, ctx, ahead, stop, on_message))
    return summary


def _all_batches(mailbox: Mailbox, uids: list[int], limit: int,
                 max_bytes: int) -> Iterator[tuple[list[int], dict[int, Meta]]]:
    step = limit * 4
    for start in range(0, len(uids), step):
        chunk = uids[start : start + step]
        meta = mailbox.meta(chunk)
        # A message over max_bytes is not downloaded: it weighs nothing in a batch.
        sizes = {uid: m.size for uid, m in meta.items() if m.size <= max_bytes}
        for batch in batches(chunk, sizes, limit):
            yield batch, meta


@dataclass
class _Batch:
    """Messages on their way, in UID order: each one already stored (its ref and whether
    it is quarantined) or new (the ref reserved for it); the new ones being made readable."""

    entries: list[tuple[RawMail, tuple[str, bool] | None, str]]
    results: Iterator[pipeline.Readable | MessageError]


def _dispatch(mailbox: Mailbox, store: Store, ctx: pipeline.Context, workers: Workers | None,
              batch: list[int], meta: dict[int, Meta], uidvalidity: int,
              taken: set[str]) -> _Batch:
    entries: list[tuple[RawMail, tuple[str, bool] | None, str]] = []
    for raw in _fetch(mailbox, ctx, batch, meta, uidvalidity):
        hit = pipeline.stored_as(raw, store)
        ref = hit[0] if hit else store.new_ref(taken)
        taken.add(ref)
        entries.append((raw, hit, ref))
    jobs = [(raw, ref) for raw, hit, ref in entries if hit is None]
    results = (workers.results(jobs) if workers
               else (pipeline.attempt(raw, ref, ctx) for raw, ref in jobs))
    return _Batch(entries, results)


def _finish(mailbox: Mailbox, store: Store, ctx: pipeline.Context, b: _Batch,
            stop: threading.Event, on_message: Callable[[pipeline.Outcome], None]) -> Summary:
    """Record a batch in UID order — duplicates too, since each record moves the mailbox
    state's last UID — then move what was recorded."""
    summary = Summary()
    processed: list[int] = []
    quarantined: list[int] = []
    for raw, hit, ref in b.entries:
        if stop.is_set():
            break  # what is not committed stays in the inbox for the next run
        outcome = (pipeline.record_duplicate(raw, hit, store) if hit
                   else pipeline.commit(raw, ref, next(b.results), store, ctx))
        (quarantined if outcome.quarantined else processed).append(raw.uid)
        summary.add(outcome)
        on_message(outcome)
    _move(mailbox, store, processed, quarantined)
    return summary


def _fetch(mailbox: Mailbox, ctx: pipeline.Context, batch: list[int], meta: dict[int, Meta],
           uidvalidity: int) -> Iterator[RawMail]:
    """The batch's messages; one too large to download comes with its header only."""
    limit = ctx.config.imap.max_message_bytes
    present = [u for u in batch if u in meta]  # expunged by someone else meanwhile: gone
    small = [u for u in present if meta[u].size <= limit]
    bodies = mailbox.fetch(small)
    for uid in present:
        if uid in small and uid not in bodies:
            continue  # vanished between FETCH calls; it will be seen again if it still exists
        complete = uid in bodies
        data = bodies.pop(uid) if complete else mailbox.fetch_header(uid)
        yield RawMail(folder=mailbox.folder, uidvalidity=uidvalidity, uid=uid, data=data,
                      received=meta[uid].received, size=meta[uid].size, complete=complete)


def _finish_known(mailbox: Mailbox, store: Store, uids: list[int], uidvalidity: int) -> list[int]:
    """Move the messages already stored; return the UIDs the store does not know."""
    processed: list[int] = []
    quarantined: list[int] = []
    unknown: list[int] = []
    for uid in uids:
        hit = store.known(mailbox.folder, uidvalidity, uid)
        if hit is None:
            unknown.append(uid)
        else:
            (quarantined if hit[1] else processed).append(uid)
    if processed or quarantined:
        log.info("moving %d message(s) committed before an interruption",
                 len(processed) + len(quarantined))
    _move(mailbox, store, processed, quarantined)
    return unknown


def _move(mailbox: Mailbox, store: Store, processed: list[int], quarantined: list[int]) -> None:
    if not (processed or quarantined):
        return
    store.make_durable()
    c = mailbox.config.imap
    mailbox.finish(processed, c.processed_folder if c.after_processing == "move" else None)
    mailbox.finish(quarantined, c.quarantine_folder)


def fetch_once(config: Config, progress: bool = False) -> Summary:
    """`fetch --once`: drain the mailbox and return the counts."""
    return_big_buffers()
    ctx = pipeline.Context.load(config)
    acknowledger = ack.Acknowledger(config)
    # Workers first: forked before the lock and the store are opened, they hold neither.
    with Workers(ctx) as workers, single_instance(config):
        store = Store.open(config.store.path)
        mailbox = Mailbox.connect(config)
        try:
            if not progress:
                return drain(mailbox, store, ctx, threading.Event(), on_message=acknowledger.note,
                             workers=workers)
            bar: list = []

            def start(n: int) -> None:
                bar.append(click.progressbar(length=n, label="Đang nhận thư", file=None))
                bar[0].__enter__()

            try:
                return drain(mailbox, store, ctx, threading.Event(),
                             on_message=lambda o: (bar[0].update(1), acknowledger.note(o)),
                             on_total=start, workers=workers)
            finally:
                if bar:
                    bar[0].__exit__(None, None, None)
        finally:
            mailbox.close()
            # After the drain, and after a failed one too: what was committed is acknowledged.
            ack.send_quietly(acknowledger, store)
            store.close()


class Daemon:
    """`run`: drain, wait for new mail (IDLE or polling), repeat; reconnect with backoff."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop = threading.Event()
        self.notify = Notifier()
        self.total = Summary()
        self.ready = False
        # Work that must go on beside intake and never block it (alerts, acknowledgements).
        self.hooks: list[Callable[[Store], object]] = []
        self._hooks_at = 0.0
        self._urgent_since: float | None = None  # an urgent item stored, not yet alerted
        self.intake = alerts.IntakeWatch(config)

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current message, then stopping", signum)
        self.stop.set()

    def run(self) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, self._on_signal)
        return_big_buffers()
        ctx = pipeline.Context.load(self.config)
        self.acknowledger = ack.Acknowledger(self.config)
        self.alert = functools.partial(alerts.send_pending, self.config)
        self.hooks.append(self.acknowledger.send_pending)
        self.hooks.append(self.alert)
        self.purge = retention.DailyPurge(self.config) if self.config.retention.purge_daily \
            else None
        if self.purge is not None:
            self.hooks.append(self.purge)
        with Workers(ctx) as self.workers, single_instance(self.config):
            store = Store.open(self.config.store.path)
            try:
                self._loop(store, ctx)
                self._last_acknowledgements(store)
                if self.purge is not None:
                    self.purge.finish(timeout=PURGE_STOP_SECONDS)
            finally:
                self.notify.stopping()
                store.close()
        log.info("stopped: %s", self.total.line())

    def _loop(self, store: Store, ctx: pipeline.Context) -> None:
        backoff = BACKOFF_START
        while not self.stop.is_set():
            try:
                mailbox = Mailbox.connect(self.config)
            except TransientError as e:
                self.notify.watchdog()  # the connect may have waited out its timeout
                self.intake.failed(e)
                backoff = self._pause(str(e), backoff)
                continue
            self.intake.connected()
            try:
                if not self.ready:
                    self.ready = True
                    self.notify.ready("đã kết nối hộp thư")
                backoff = BACKOFF_START
                self._serve(mailbox, store, ctx)
            except TransientError as e:
                backoff = self._pause(str(e), backoff)
            finally:
                mailbox.close()

    def _serve(self, mailbox: Mailbox, store: Store, ctx: pipeline.Context) -> None:
        while not self.stop.is_set():
            summary = drain(mailbox, store, ctx, self.stop,
                            on_message=lambda o: self._on_message(o, store), workers=self.workers)
            self.total.merge(summary)
            if self.stop.is_set():
                return
            if summary.stored:
                self._hooks_at = 0.0  # new mail: alerts and acknowledgements at the next tick
            self.notify.status(f"đã lưu {self.total.stored}, cách ly {self.total.quarantined}")
            mailbox.wait(self.config.imap.poll_seconds, self.stop, lambda: self._tick(store))

    def _on_message(self, outcome: pipeline.Outcome, store: Store) -> None:
        """After each commit. An urgent message is alerted at the end of the drain, or
        [alerts] batch_seconds after it was stored if the drain is still going (a long
        backlog): urgent items stored meanwhile go in the same alert."""
        self.notify.watchdog()
        self.acknowledger.note(outcome)
        now = time.monotonic()
        if outcome.urgency == "khan" and self._urgent_since is None:
            self._urgent_since = now
        if (self._urgent_since is not None
                and now - self._urgent_since >= self.config.alerts.batch_seconds):
            self._urgent_since = None
            self._run_hook(self.alert, store)

    def _last_acknowledgements(self, store: Store) -> None:
        """A stop (an upgrade, a restart) must not drop what was queued since the last
        round: the reply addresses exist only in this process."""
        try:
            self.acknowledger.send_pending(store, last_chance=True)
        except TransientError as e:
            log.warning("%s", e)
        if self.acknowledger.pending:
            log.warning("%d acknowledgement(s) not sent; they are not kept after a stop",
                        self.acknowledger.pending)

    def _run_hook(self, hook: Callable[[Store], object], store: Store) -> None:
        try:
            hook(store)
        except TransientError as e:
            log.warning("%s (will retry)", e)

    def _tick(self, store: Store) -> None:
        """About once a second while waiting: the watchdog, and the hooks every HOOK_SECONDS."""
        self.notify.watchdog()
        now = time.monotonic()
        if now - self._hooks_at < HOOK_SECONDS:
            return
        self._hooks_at = now
        self._urgent_since = None  # the alert hook is among these
        for hook in self.hooks:
            # Each hook may wait out an SMTP timeout (60 s) on a server that drops
            # packets: two in a row must not add up to WatchdogSec (120 s).
            self.notify.watchdog()
            self._run_hook(hook, store)

    def _pause(self, reason: str, backoff: float) -> float:
        log.warning("%s; retrying in %.0f s", reason, backoff)
        self.notify.status(f"lỗi kết nối, thử lại sau {backoff:.0f} giây")
        deadline = time.monotonic() + backoff
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.notify.watchdog()
            self.stop.wait(min(5.0, max(0.0, deadline - time.monotonic())))
        return min(backoff * 2, BACKOFF_CAP)


def run(config: Config) -> None:
    Daemon(config).run()
