"""Acknowledgements: a short Vietnamese "we received it, code HT-…" to the citizen.

Sent only after the message is committed, never to automatic mail (RFC 3834
§2 and the vendor headers of §5), and at most `[acknowledge] per_day` times a
day to one address. The address is kept in memory only, from the moment the
pipeline hands over its Parsed message until the SMTP server accepts the
reply; the store counts acknowledgements by pseudonym. A daemon restart
therefore forgets unsent acknowledgements — by design, not by accident.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import importlib.resources
import logging
import re
import time
from dataclasses import dataclass, replace
from email.message import EmailMessage

import jinja2

from . import anonymise, mail
from .config import Config
from .errors import ConfigError, TransientError
from .models import Parsed
from .pipeline import Outcome
from .store import Store

log = logging.getLogger(__name__)

# Marks mail we send, so that a copy coming back (a forward, a loop) is never answered.
OUR_HEADER = "X-Hom-Thu-So"
NO_REPLY_SENDERS = frozenset({"mailer-daemon", "postmaster", "noreply", "no-reply",
                              "donotreply", "do-not-reply"})
BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
# Flags under which an acknowledgement would only feed a spammer's list or an abuser.
SILENT_FLAGS = frozenset({"spam", "auto"})
MESSAGE_ID_RE = re.compile(r"<[^<>\s]{1,250}>")
COMMENT_RE = re.compile(r"\([^()]*\)")
RETRY_FIRST = 30.0  # seconds; doubled after each failed try of one acknowledgement
RETRY_CAP = 3600.0
GIVE_UP_AFTER = 24 * 3600.0  # an acknowledgement a day late says nothing useful
WINDOW = dt.timedelta(hours=24)


# ----- RFC 3834: when not to answer ------------------------------------------------


def _addresses(parsed: Parsed, *names: str) -> list[str]:
    values = [v for n in names for v in parsed.headers.get(n, ())]
    return [a.lower() for _d, a in email.utils.getaddresses(values) if "@" in a]


def ack_address(parsed: Parsed) -> str:
    """Where an acknowledgement goes: the envelope sender (Return-Path), else From, as
    RFC 3834 says. Empty when Reply-To points elsewhere: anyone can set it, and the ward
    would then be mailing a third party of the sender's choosing, a new one each time."""
    envelope = (_addresses(parsed, "return-path") or _addresses(parsed, "from") or [""])[0]
    reply_to = _addresses(parsed, "reply-to")
    if reply_to and not any(_same_mailbox(r, envelope) for r in reply_to):
        return ""
    return envelope


def _local_part(address: str) -> str:
    return address.rpartition("@")[0].split("+", 1)[0]


def _same_mailbox(a: str, b: str) -> bool:
    """Equal addresses, ignoring case and a +tag (hopthu+tdp1@ is still us)."""
    a_local, _, a_domain = a.lower().rpartition("@")
    b_local, _, b_domain = b.lower().rpartition("@")
    return a_domain == b_domain and a_local.split("+", 1)[0] == b_local.split("+", 1)[0]


def _keyword(value: str) -> str:
    """The first word of a structured header, without RFC 5322 comments or parameters."""
    return COMMENT_RE.sub("", value).split(";", 1)[0].strip().lower()


def why_not(parsed: Parsed, config: Config) -> str | None:
    """The reason not to acknowledge this message, or None when it may be acknowledged."""
    h = parsed.headers
    for value in h.get("auto-submitted", ()):
        if _keyword(value) != "no":
            return "auto-submitted"
    if any(_keyword(v) in BULK_PRECEDENCE for v in h.get("precedence", ())):
        return "precedence"
    if any(name.startswith("list-") for name in h):
        return "mailing list"
    if any(v.strip().replace(" ", "") == "<>" for v in h.get("return-path", ())):
        return "empty return-path"
    senders = _addresses(parsed, "from", "sender", "reply-to", "return-path")
    if any(_local_part(a) in NO_REPLY_SENDERS for a in senders):
        return "system sender"
    ours = [config.mailbox.address]
    if config.smtp is not None:
        ours.append(email.utils.parseaddr(config.smtp.from_)[1])
    to = ack_address(parsed)
    if OUR_HEADER.lower() in h or any(
        _same_mailbox(a, o) for a in [*_addresses(parsed, "from"), to] for o in ours if o and a
    ):
        return "our own mail"
    if parsed.automatic:
        return "automatic"
    if not to:
        return "reply-to elsewhere" if _addresses(parsed, "reply-to") else "no address"
    return None


# ----- the message -----------------------------------------------------------------


def template_env() -> jinja2.Environment:
    def load(name: str) -> str | None:
        # templates/ is installed as the mapped package mailbox_processor.templates.
        path = importlib.resources.files("mailbox_processor.templates").joinpath(name)
        try:
            return path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    return jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        autoescape=jinja2.select_autoescape(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_ack(env: jinja2.Environment, ref: str, mailbox_name: str) -> str:
    return env.get_template("ack.txt").render(ref=ref, mailbox_name=mailbox_name)


def ack_subject(ref: str) -> str:
    return f"Đã nhận góp ý – mã {ref}"


def original_message_id(parsed: Parsed) -> str | None:
    """The original's Message-ID when it is well formed (it goes into our headers verbatim)."""
    for value in parsed.headers.get("message-id", ()):
        match = MESSAGE_ID_RE.search(value)
        if match:
            return match.group(0)
    return None


def outgoing(config: Config, *, to: str, subject: str, text: str, kind: str, ref: str,
             in_reply_to: str | None) -> EmailMessage:
    """A plain-text message from the mailbox to one citizen, threaded under the original."""
    msg = EmailMessage()
    msg["From"] = email.utils.formataddr((config.mailbox.name, config.mailbox.address))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(dt.datetime.now(dt.UTC))
    msg["Message-ID"] = mail.message_id(config, kind)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    if kind == "ack":
        msg["Auto-Submitted"] = "auto-replied"
    # Out-of-office replies to us would only come back as "automatic" submissions.
    msg["X-Auto-Response-Suppress"] = "All"
    msg[OUR_HEADER] = f"{kind} {ref}"
    msg.set_content(text, charset="utf-8", cte=mail.text_cte(text))
    return msg


# ----- the queue -------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    ref: str
    address: str  # memory only: never stored, never logged
    pseudonym: str
    in_reply_to: str | None
    queued: float  # time.monotonic()
    tries: int = 0
    next_try: float = 0.0


class Acknowledger:
    """Queues acknowledgements as messages are committed and sends them beside intake."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.enabled = config.acknowledge.enabled and config.smtp is not None
        self._queue: list[Pending] = []
        self._pepper: bytes | None = None
        self._env: jinja2.Environment | None = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def note(self, outcome: Outcome) -> None:
        """Called right after a message is committed; keeps its reply address in memory.

        Never raises: it runs inside the drain, and an acknowledgement is never worth
        stopping intake for.
        """
        if not self.enabled or outcome.duplicate or outcome.quarantined or outcome.parsed is None:
            return
        try:
            self._queue_for(outcome.ref, outcome.parsed)
        except Exception as e:
            log.warning("%s: no acknowledgement (%s)", outcome.ref, type(e).__name__)

    def _queue_for(self, ref: str, parsed: Parsed) -> None:
        reason = why_not(parsed, self.config)
        if reason:
            log.info("%s: no acknowledgement (%s)", ref, reason)
            return
        address = ack_address(parsed)
        self._queue.append(Pending(
            ref=ref,
            address=address,
            pseudonym=anonymise.pseudonym(address, self._pepper_bytes()),
            in_reply_to=original_message_id(parsed),
            queued=time.monotonic(),
        ))

    def _pepper_bytes(self) -> bytes:
        if self._pepper is None:
            self._pepper = anonymise.load_pepper(self.config.privacy.pepper_file)
        return self._pepper

    def send_pending(self, store: Store, *, last_chance: bool = False) -> int:
        """Send what is due; the number sent. A failed one stays queued with a longer wait.

        Raises TransientError only, after the first failure of a round: when the
        server is down, the others would fail the same way. `last_chance` (the
        daemon stopping) tries every queued one now, waiting or not: the
        addresses die with the process.
        """
        sent = 0
        now = time.monotonic()
        for item in list(self._queue):
            if item.next_try > now and not last_chance:
                continue
            if now - item.queued > GIVE_UP_AFTER:
                log.warning("%s: acknowledgement given up after %d tries", item.ref, item.tries)
                self._queue.remove(item)
                continue
            if not self._wanted(store, item):
                self._queue.remove(item)
                continue
            try:
                self._send(item)
            except (TransientError, ConfigError) as e:
                self._retry_later(item, now)
                raise TransientError(f"{item.ref}: acknowledgement not sent: {e}") from None
            except Exception as e:  # an address no header or server can carry: drop this one only
                log.warning("%s: acknowledgement dropped (%s)", item.ref, type(e).__name__)
                self._queue.remove(item)
                continue
            store.record_ack(item.ref, item.pseudonym)
            self._queue.remove(item)
            sent += 1
            log.info("%s: acknowledgement sent", item.ref)
        return sent

    def _wanted(self, store: Store, item: Pending) -> bool:
        if store.acknowledged(item.ref):
            return False
        row = store.row(item.ref)
        if row is None or SILENT_FLAGS & set(row.flags):
            log.info("%s: no acknowledgement (%s)", item.ref, "flagged" if row else "gone")
            return False
        since = (dt.datetime.now(dt.UTC) - WINDOW).isoformat(timespec="seconds")
        if store.acks_since(item.pseudonym, since) >= self.config.acknowledge.per_day:
            log.info("%s: no acknowledgement (%d already today for %s)",
                     item.ref, self.config.acknowledge.per_day, item.pseudonym)
            return False
        return True

    def _send(self, item: Pending) -> None:
        if self._env is None:
            self._env = template_env()
        text = render_ack(self._env, item.ref, self.config.mailbox.name)
        msg = outgoing(self.config, to=item.address, subject=ack_subject(item.ref), text=text,
                       kind="ack", ref=item.ref, in_reply_to=item.in_reply_to)
        mail.send(self.config, msg, to=[item.address])

    def _retry_later(self, item: Pending, now: float) -> None:
        wait = min(RETRY_FIRST * 2**item.tries, RETRY_CAP)
        i = self._queue.index(item)
        self._queue[i] = replace(item, tries=item.tries + 1, next_try=now + wait)


def send_quietly(acknowledger: Acknowledger, store: Store) -> None:
    """For one-shot commands: acknowledgement trouble is a warning, never a failed fetch."""
    try:
        acknowledger.send_pending(store)
    except TransientError as e:
        log.warning("%s", e)
    if acknowledger.pending:
        log.warning("%d acknowledgement(s) not sent; they are not kept after this run",
                    acknowledger.pending)
