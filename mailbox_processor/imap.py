"""The IMAP side: connect, list what is waiting, fetch it without marking it read, move it on.

Every imapclient, imaplib, ssl and socket error is turned into a
TransientError here, the one module that talks to the library.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from .config import Config
from .errors import ConfigError, LoginRefused, TransientError

log = logging.getLogger(__name__)

# Messages fetched per round trip are also bounded by their total size, so a
# batch never holds more than this in memory, whatever batch_size says (intake
# keeps two batches in hand: one being committed, the next being prepared).
BATCH_BYTES = 16 * 1024 * 1024
IDLE_RENEW_SECONDS = 9 * 60  # servers may drop an IDLE after 10 minutes (RFC 2177 says 29)


def batches(uids: list[int], sizes: dict[int, int], limit: int) -> Iterator[list[int]]:
    """Runs of UIDs in order, at most `limit` messages and BATCH_BYTES in total each."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= limit or total + size > BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


@dataclass(frozen=True)
class Meta:
    size: int
    received: dt.datetime  # INTERNALDATE, UTC


@contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except LoginError:
        raise LoginRefused(f"IMAP: {what}: login refused (check username and password)") from None
    except ssl.SSLCertVerificationError as e:
        raise TransientError(
            f"IMAP: {what}: certificate not trusted ({e.verify_message}); "
            "set imap.ca_file for a private CA"
        ) from None
    except (IMAPClientError, imaplib.IMAP4.error, OSError, EOFError) as e:
        # imaplib's abort/error and socket errors; the text is the server's or the OS's, not mail.
        raise TransientError(f"IMAP: {what}: {type(e).__name__}: {e}") from None


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"imap.ca_file {ca_file}: cannot load: {e}") from None


class Mailbox:
    """One logged-in IMAP connection with a folder selected."""

    def __init__(self, client: imapclient.IMAPClient, config: Config) -> None:
        self.client = client
        self.config = config
        self.folder = config.imap.folder
        self.uidvalidity = 0

    @classmethod
    def connect(cls, config: Config) -> Mailbox:
        c = config.imap
        context = _ssl_context(c.ca_file) if c.security != "none" else None
        where = f"{c.host}:{c.port}"
        with _errors(f"connecting to {where}"):
            client = imapclient.IMAPClient(
                c.host, port=c.port, ssl=c.security == "tls", ssl_context=context,
                timeout=c.timeout_seconds,
            )
            # Keep INTERNALDATE time-zone aware, so dates don't shift with the server's locale.
            client.normalise_times = False
        mailbox = cls(client, config)
        with _errors(f"logging in to {where}"):
            if c.security == "starttls":
                client.starttls(context)
            if c.auth == "xoauth2":
                client.oauth2_login(c.username or config.mailbox.address, config.oauth2_token("imap"))
            elif c.username:
                password = config.secret("imap") or ""
                if password.isascii():
                    client.login(c.username, password)
                else:  # LOGIN can only carry ASCII; AUTHENTICATE PLAIN carries UTF-8
                    client.plain_login(c.username, password)
        mailbox._prepare_folders()
        return mailbox

    def _prepare_folders(self) -> None:
        c = self.config.imap
        wanted = [c.quarantine_folder]
        if c.after_processing == "move":
            wanted.append(c.processed_folder)
        with _errors("preparing folders"):
            if not self.client.folder_exists(c.folder):
                raise TransientError(f"IMAP: folder {c.folder!r} does not exist (imap.folder)")
            for name in wanted:
                if not self.client.folder_exists(name):
                    log.info("creating IMAP folder %s", name)
                    self.client.create_folder(name)

    def close(self) -> None:
        with suppress(Exception):
            self.client.logout()

    def select(self) -> int:
        with _errors(f"selecting {self.folder}"):
            info = self.client.select_folder(self.folder)
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        return self.uidvalidity

    def uids_above(self, last_uid: int) -> list[int]:
        """UIDs greater than last_uid, ascending. (`N:*` always matches the highest UID.)"""
        with _errors("searching"):
            found = self.client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(u for u in found if u > last_uid)

    def uids_up_to(self, last_uid: int) -> list[int]:
        """UIDs at or below last_uid still in the folder: committed but not yet moved away."""
        if last_uid < 1:
            return []
        with _errors("searching"):
            return sorted(self.client.search(["UID", f"1:{last_uid}"]))

    def meta(self, uids: list[int]) -> dict[int, Meta]:
        with _errors("reading sizes"):
            data = self.client.fetch(uids, [b"RFC822.SIZE", b"INTERNALDATE"])
        return {
            uid: Meta(size=int(d[b"RFC822.SIZE"]), received=_utc(d[b"INTERNALDATE"]))
            for uid, d in data.items()
        }

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        """Whole messages, with BODY.PEEK[] so that fetching never sets \\Seen."""
        if not uids:
            return {}
        with _errors("fetching"):
            data = self.client.fetch(uids, [b"BODY.PEEK[]"])
        return {uid: bytes(d[b"BODY[]"]) for uid, d in data.items() if b"BODY[]" in d}

    def fetch_header(self, uid: int) -> bytes:
        with _errors("fetching a header"):
            data = self.client.fetch([uid], [b"BODY.PEEK[HEADER]"])
        return bytes(data.get(uid, {}).get(b"BODY[HEADER]", b""))

    def finish(self, uids: list[int], folder: str | None) -> None:
        """Move committed messages to `folder`, or delete them when folder is None."""
        if not uids:
            return
        with _errors(f"moving {len(uids)} message(s)"):
            if folder is not None and self.client.has_capability("MOVE"):
                self.client.move(uids, folder)
                return
            if folder is not None:
                self.client.copy(uids, folder)
            self.client.add_flags(uids, [imapclient.DELETED])
            if self.client.has_capability("UIDPLUS"):
                self.client.uid_expunge(uids)
            else:
                self.client.expunge()

    def wait(self, seconds: float, stop: threading.Event, on_tick: Callable[[], None]) -> None:
        """Block until the server reports new mail, `seconds` pass, or `stop` is set.

        Uses IDLE where the server has it (renewed well before servers drop
        it), else waits on the event so a stop request is served at once.
        `on_tick` runs about once a second either way (watchdog, alerts).
        """
        idle = self.config.imap.idle and self.client.has_capability("IDLE")
        deadline = time.monotonic() + (min(seconds, IDLE_RENEW_SECONDS) if idle else seconds)
        with _errors("waiting for new mail"):
            if idle:
                self.client.idle()
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    if idle:
                        if any(_is_change(r) for r in self.client.idle_check(timeout=1.0)):
                            return
                    else:
                        stop.wait(1.0)
                    on_tick()
            finally:
                if idle:
                    self.client.idle_done()


def _is_change(response: tuple) -> bool:
    return len(response) > 1 and response[1] in (b"EXISTS", b"RECENT")


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:  # a server that sends no zone: take it as UTC
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)

