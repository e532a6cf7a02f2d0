"""Draining the mailbox: once (`fetch --once`) or for ever (`run`).

The order of work is what keeps promise 1: a message is committed to the
store (with the mailbox state) before it is moved on the server, so a crash
at any point either leaves it in the inbox to be fetched again — and then
recognised by its UID or content hash — or has it stored already.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from . import ack, alerts, pipeline, retention
from .config import Config
from .errors import TransientError
from .imap import BATCH_BYTES, Mailbox, Meta
from .models import RawMail
from .sdnotify import Notifier
from .store import Store

log = logging.getLogger(__name__)

BACKOFF_START = 2.0
BACKOFF_CAP = 300.0  # five minutes
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HOOK_SECONDS = 30.0


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


@contextmanager
def single_instance(config: Config) -> Iterator[None]:
    """One process at a time per store: two drains would race on the same UIDs."""
    path = Path(config.store.path + ".lock")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TransientError(
                f"another mailbox-processor is already working on this store ({path})"
            ) from None
        yield


def _batches(uids: list[int], meta: dict[int, Meta], limit: int, max_bytes: int) -> Iterator[list[int]]:
    """Consecutive runs of UIDs, at most `limit` long and BATCH_BYTES in total."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = min(meta[uid].size, max_bytes) if uid in meta else 0
        if batch and (len(batch) >= limit or total + size > BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def drain(
    mailbox: Mailbox,
    store: Store,
    ctx: pipeline.Context,
    stop: threading.Event,
    on_message: Callable[[pipeline.Outcome], None] = lambda _o: None,
    on_total: Callable[[int], None] = lambda _n: None,
) -> Summary:
    """Store every message waiting in the folder, then move each on the server."""
    c = ctx.config.imap
    summary = Summary()
    uidvalidity = mailbox.select()
    state = store.state(mailbox.folder)
    last_uid = state[1] if state and state[0] == uidvalidity else 0
    if state and state[0] != uidvalidity:
        log.warning("%s: UIDVALIDITY changed (%s → %s); matching by content hash",
                    mailbox.folder, state[0], uidvalidity)

    # Committed earlier but not moved (a crash between commit and move): just move them.
    _finish_known(mailbox, store, mailbox.uids_up_to(last_uid), uidvalidity)

    new = mailbox.uids_above(last_uid)
    on_total(len(new))
    for start in range(0, len(new), c.batch_size * 4):
        chunk = new[start : start + c.batch_size * 4]
        meta = mailbox.meta(chunk)
        for batch in _batches(chunk, meta, c.batch_size, c.max_message_bytes):
            done = _drain_batch(mailbox, store, ctx, batch, meta, uidvalidity, stop, on_message)
            for outcome in done:
                summary.add(outcome)
            if stop.is_set():
                return summary
    return summary


def _drain_batch(
    mailbox: Mailbox,
    store: Store,
    ctx: pipeline.Context,
    batch: list[int],
    meta: dict[int, Meta],
    uidvalidity: int,
    stop: threading.Event,
    on_message: Callable[[pipeline.Outcome], None],
) -> list[pipeline.Outcome]:
    c = ctx.config.imap
    present = [u for u in batch if u in meta]  # expunged by someone else meanwhile: gone
    small = [u for u in present if meta[u].size <= c.max_message_bytes]
    bodies = mailbox.fetch(small)
    outcomes: list[pipeline.Outcome] = []
    processed: list[int] = []
    quarantined: list[int] = []
    for uid in present:
        complete = uid in bodies
        data = bodies.pop(uid) if complete else mailbox.fetch_header(uid)
        if uid in small and not complete:
            continue  # vanished between FETCH calls; it will be seen again if it still exists
        raw = RawMail(folder=mailbox.folder, uidvalidity=uidvalidity, uid=uid, data=data,
                      received=meta[uid].received, size=meta[uid].size, complete=complete)
        outcome = pipeline.process(raw, store, ctx)
        (quarantined if outcome.quarantined else processed).append(uid)
        outcomes.append(outcome)
        on_message(outcome)
        if stop.is_set():
            break
    _move(mailbox, processed, quarantined)
    return outcomes


def _finish_known(mailbox: Mailbox, store: Store, uids: list[int], uidvalidity: int) -> None:
    processed: list[int] = []
    quarantined: list[int] = []
    for uid in uids:
        hit = store.known(mailbox.folder, uidvalidity, uid)
        if hit is None:
            continue  # not ours (a store restored from backup?): left for a full look later
        (quarantined if hit[1] else processed).append(uid)
    if processed or quarantined:
        log.info("moving %d message(s) committed before an interruption",
                 len(processed) + len(quarantined))
    _move(mailbox, processed, quarantined)


def _move(mailbox: Mailbox, processed: list[int], quarantined: list[int]) -> None:
    c = mailbox.config.imap
    mailbox.finish(processed, c.processed_folder if c.after_processing == "move" else None)
    mailbox.finish(quarantined, c.quarantine_folder)


def fetch_once(config: Config, progress: bool = False) -> Summary:
    """`fetch --once`: drain the mailbox and return the counts."""
    ctx = pipeline.Context.load(config)
    acknowledger = ack.Acknowledger(config)
    with single_instance(config):
        store = Store.open(config.store.path)
        mailbox = Mailbox.connect(config)
        try:
            if not progress:
                return drain(mailbox, store, ctx, threading.Event(), on_message=acknowledger.note)
            bar: list = []

            def start(n: int) -> None:
                bar.append(click.progressbar(length=n, label="Đang nhận thư", file=None))
                bar[0].__enter__()

            try:
                return drain(mailbox, store, ctx, threading.Event(),
                             on_message=lambda o: (bar[0].update(1), acknowledger.note(o)),
                             on_total=start)
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
        self.hooks: list[Callable[[Store], None]] = []
        self._hooks_at = 0.0

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current message, then stopping", signum)
        self.stop.set()

    def run(self) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, self._on_signal)
        ctx = pipeline.Context.load(self.config)
        self.acknowledger = ack.Acknowledger(self.config)
        self.hooks.append(self.acknowledger.send_pending)
        self.hooks.append(functools.partial(alerts.send_pending, self.config))
        if self.config.retention.purge_daily:
            self.hooks.append(retention.DailyPurge(self.config, on_progress=self.notify.watchdog))
        with single_instance(self.config):
            store = Store.open(self.config.store.path)
            try:
                self._loop(store, ctx)
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
                backoff = self._pause(str(e), backoff)
                continue
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
                            on_message=lambda o: (self.notify.watchdog(), self.acknowledger.note(o)))
            self.total.merge(summary)
            if self.stop.is_set():
                return
            if summary.stored:
                self._hooks_at = 0.0  # new mail: alerts and acknowledgements at the next tick
            self.notify.status(f"đã lưu {self.total.stored}, cách ly {self.total.quarantined}")
            mailbox.wait(self.config.imap.poll_seconds, self.stop, lambda: self._tick(store))

    def _tick(self, store: Store) -> None:
        """About once a second while waiting: the watchdog, and the hooks every HOOK_SECONDS."""
        self.notify.watchdog()
        now = time.monotonic()
        if now - self._hooks_at < HOOK_SECONDS:
            return
        self._hooks_at = now
        for hook in self.hooks:
            try:
                hook(store)
            except TransientError as e:
                log.warning("%s (will retry)", e)

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
