"""Outgoing mail over SMTP: the one module that talks to smtplib.

Used for digests and alerts (issue 5) and reusable for acknowledgements and
replies. Certificates and host names are always verified; a ward with its own
CA points `[smtp] ca_file` at it instead of turning verification off. Every
library failure leaves this module as a one-line TransientError, so the
caller either retries later or exits 1.
"""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr

from .config import Config, Smtp
from .errors import ConfigError, TransientError

log = logging.getLogger(__name__)
ADDRESS = re.compile(r"[^\s<>\"']+@[^\s<>\"']+")

# RFC 5322 allows 998 octets a line; an 8bit part with a longer one must be re-encoded.
MAX_LINE = 998


def smtp_config(config: Config) -> Smtp:
    if config.smtp is None:
        raise ConfigError(f"{config.path}: [smtp] is missing; it is needed to send mail")
    return config.smtp


def envelope_from(config: Config) -> str:
    return parseaddr(smtp_config(config).from_)[1]


def message_id(config: Config, prefix: str) -> str:
    """A fresh Message-ID on the mailbox's own domain (never the server's host name)."""
    domain = config.mailbox.address.rpartition("@")[2]
    return make_msgid(idstring=prefix, domain=domain)


def ssl_context(server: Smtp) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=server.ca_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"smtp.ca_file {server.ca_file}: cannot load: {e}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _where(server: Smtp) -> str:
    return f"SMTP {server.host}:{server.port}"


def _explain(server: Smtp, e: BaseException) -> TransientError:
    """One line a volunteer can act on, without quoting any mail content."""
    where = _where(server)
    if isinstance(e, ssl.SSLCertVerificationError):
        why = f"certificate not trusted ({e.verify_message}); set smtp.ca_file if it is the ward's own CA"
    elif isinstance(e, smtplib.SMTPAuthenticationError):
        what = ("the OAuth token (smtp.oauth2_token_file or _command)" if server.auth == "xoauth2"
                else "smtp.username and the password")
        why = f"login refused ({e.smtp_code}); check {what}"
    elif isinstance(e, smtplib.SMTPNotSupportedError):
        why = f"server does not support what is needed: {e}"
    elif isinstance(e, smtplib.SMTPRecipientsRefused):
        why = f"all {len(e.recipients)} recipients refused"
    elif isinstance(e, smtplib.SMTPResponseException):
        raw = e.smtp_error
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        # Servers quote the recipient ("550 <someone@…> unknown"): a citizen's address
        # must not reach a log line or the terminal.
        why = f"server said {e.smtp_code} {ADDRESS.sub('<address>', ' '.join(text.split()))[:200]}"
    elif isinstance(e, TimeoutError):
        why = f"no answer within {server.timeout_seconds:g} s"
    elif isinstance(e, ConnectionRefusedError):
        why = "connection refused (is the server down or the port wrong?)"
    elif isinstance(e, ssl.SSLError):
        why = f"TLS failed ({e.reason or e}); check smtp.security and smtp.port"
    elif isinstance(e, smtplib.SMTPServerDisconnected):
        why = "server closed the connection"
    elif isinstance(e, OSError):
        why = e.strerror or type(e).__name__
    else:
        why = " ".join(str(e).split())[:200] or type(e).__name__
    return TransientError(f"{where}: {why}")


@contextmanager
def connect(config: Config) -> Iterator[smtplib.SMTP]:
    """A logged-in SMTP session; library errors come out as TransientError."""
    server = smtp_config(config)
    oauth2 = server.auth == "xoauth2"
    password = None if oauth2 else config.secret("smtp")  # ConfigError stays a ConfigError
    try:
        client = _open(server)
        try:
            if oauth2:
                _oauth2_login(client, server.username or config.mailbox.address,
                              config.oauth2_token("smtp"))
            elif server.username is not None and password is not None:
                _login(client, server.username, password)
            yield client
        finally:
            _close(client)
    except (smtplib.SMTPException, ssl.SSLError, OSError) as e:
        raise _explain(server, e) from None


def _open(server: Smtp) -> smtplib.SMTP:
    timeout = server.timeout_seconds
    if server.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            server.host, server.port, timeout=timeout, context=ssl_context(server)
        )
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=timeout)
    try:
        client.ehlo()
        if server.security == "starttls":
            # starttls() refuses with SMTPNotSupportedError when the server does not offer it:
            # we never fall back to clear text.
            client.starttls(context=ssl_context(server))
            client.ehlo()
    except BaseException:
        _close(client)
        raise
    return client


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    if (username + password).isascii():
        client.login(username, password)
        return
    # smtplib encodes credentials as ASCII and raises UnicodeEncodeError; RFC 4616 PLAIN is
    # UTF-8, so a Vietnamese password goes that way (only ever over TLS, see config).
    if "PLAIN" not in client.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPNotSupportedError("a non-ASCII password needs AUTH PLAIN")
    token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode()).decode()
    code, resp = client.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, resp)


def _oauth2_login(client: smtplib.SMTP, username: str, token: str) -> None:
    """SASL XOAUTH2, as Gmail and Microsoft 365 want it. On a bad token the server sends
    a 334 with an error in JSON; the empty answer ends the exchange with a 535."""
    response = f"user={username}\x01auth=Bearer {token}\x01\x01"
    client.auth("XOAUTH2", lambda challenge=None: "" if challenge is not None else response)


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def check(config: Config) -> None:
    """Connect, negotiate TLS and log in, without sending anything (for `check` and `init`)."""
    with connect(config) as client:
        client.noop()


def send(config: Config, msg: EmailMessage, to: Sequence[str] | None = None) -> None:
    """Hand one message to the server; returns only once the server accepted it.

    `to` defaults to the message's To header. Raises TransientError when the
    server could not be reached or refused the message (nothing was accepted).
    """
    with connect(config) as client:
        deliver(config, client, msg, to)


def deliver(
    config: Config, client: smtplib.SMTP, msg: EmailMessage, to: Sequence[str] | None = None
) -> None:
    recipients = list(to) if to is not None else [
        addr for _name, addr in _addresses(msg.get_all("To", []))
    ]
    if not recipients:
        raise ConfigError(f"{config.path}: no recipient for an outgoing message")
    options: list[str] = []
    if _has_8bit(msg):
        if client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        else:
            msg = _as_base64(msg)
    refused = client.send_message(
        msg, from_addr=envelope_from(config), to_addrs=recipients, mail_options=options
    )
    if refused:
        # Some recipients accepted it: it is delivered. Count only; addresses stay out of logs.
        log.warning("%d of %d recipients refused a message", len(refused), len(recipients))


def _addresses(values: Sequence[str]) -> list[tuple[str, str]]:
    from email.utils import getaddresses

    return [(n, a) for n, a in getaddresses([str(v) for v in values]) if a]


def _has_8bit(msg: EmailMessage) -> bool:
    return any(
        str(part.get("Content-Transfer-Encoding", "")).lower() == "8bit"
        for part in msg.walk()
        if not part.is_multipart()
    )


def _as_base64(msg: EmailMessage) -> EmailMessage:
    """A copy whose 8bit text parts are base64: for the rare server without 8BITMIME."""
    import copy

    msg = copy.deepcopy(msg)
    for part in msg.walk():
        if not part.is_multipart() and str(part.get("Content-Transfer-Encoding", "")).lower() == "8bit":
            text = part.get_content()
            part.set_content(text, subtype=part.get_content_subtype(), cte="base64")
    return msg


def text_cte(text: str) -> str:
    """8bit when every line fits RFC 5322's limit, else base64 (never quoted-printable)."""
    longest = max((len(line.encode("utf-8")) for line in text.splitlines()), default=0)
    return "8bit" if longest <= MAX_LINE - 2 else "base64"
