"""Real aiosmtpd servers for the tests (owned by the digest work, issue 5).

Each fixture starts a real SMTP server on a free port of 127.0.0.1 and keeps
every envelope it accepted; tests parse them with the stdlib email parser.

- `smtp_plain`: no TLS, no login (a local relay).
- `smtp_starttls`: STARTTLS required, AUTH required, self-signed certificate
  made with `cryptography`; `ca_file` is what the client must trust.
- `smtp_tls`: implicit TLS (port 465 style), same certificate, AUTH.
- `smtp_oauth2`: STARTTLS and AUTH XOAUTH2 only (Gmail, Microsoft 365), accepting
  the bearer token OAUTH2_TOKEN for USERNAME.
- `smtp_down_port`: a port with nothing listening.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USERNAME = "hopthu@phuong.example.vn"
PASSWORD = "mật-khẩu-thử 123"
OAUTH2_TOKEN = "ya29.test-access-token"


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...]

    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


class Recorder:
    """aiosmtpd handler: accept everything, remember it. `refuse` makes DATA fail with 451."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.refuse = False
        self.refused = 0  # messages turned away while `refuse` was set
        self.refuse_after: int | None = None  # accept this many more, then refuse
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refuse_after is not None:
            self.refuse = self.refuse or self.refuse_after <= 0
            self.refuse_after -= 1
        if self.refuse:
            self.refused += 1
            return "451 4.3.0 Try again later"
        with self._lock:
            self.envelopes.append(Envelope(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=envelope.original_content or envelope.content,
                mail_options=tuple(envelope.mail_options),
            ))
        return "250 2.0.0 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: Recorder
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def envelopes(self) -> list[Envelope]:
        return self.handler.envelopes

    def messages(self) -> list[EmailMessage]:
        return [e.message() for e in self.handler.envelopes]

    def smtp_config(self, security: str, password_file: Path | None = None) -> dict[str, object]:
        """The [smtp] table that points a make_config() file at this server."""
        table: dict[str, object] = {"host": self.host, "port": self.port, "security": security,
                                    "timeout_seconds": 10}
        if self.ca_file is not None:
            table["ca_file"] = str(self.ca_file)
        if self.username is not None and password_file is not None:
            password_file.write_text(self.password or "", encoding="utf-8")
            table["username"] = self.username
            table["password_file"] = str(password_file)
        return table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(d: Path, names: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for these DNS names and IP addresses."""
    d.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = d / "cert.pem", d / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return cert_file, key_file


@pytest.fixture(scope="session")
def smtp_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate PEM, key PEM): self-signed, valid for 127.0.0.1 and localhost."""
    return make_cert(tmp_path_factory.mktemp("smtp-cert"), ["localhost", "127.0.0.1"])


def _server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == USERNAME
          and auth_data.password.decode() == PASSWORD)
    return AuthResult(success=ok, handled=False)


def _run(controller: Controller, server: SmtpServer) -> Iterator[SmtpServer]:
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def smtp_plain() -> Iterator[SmtpServer]:
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    yield from _run(controller, SmtpServer("127.0.0.1", port, handler))


def _starttls_with_auth(handler: Recorder, cert: tuple[Path, Path], password: str | None,
                        **controller: object) -> Iterator[SmtpServer]:
    port = free_port()
    server = Controller(
        handler, hostname="127.0.0.1", port=port,
        tls_context=_server_context(cert), require_starttls=True,
        auth_required=True, auth_require_tls=True, authenticator=_authenticator, **controller,
    )
    yield from _run(server, SmtpServer("127.0.0.1", port, handler, ca_file=cert[0],
                                       username=USERNAME, password=password))


@pytest.fixture
def smtp_starttls(smtp_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    yield from _starttls_with_auth(Recorder(), smtp_cert, PASSWORD)


@pytest.fixture
def smtp_tls(smtp_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    handler = Recorder()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port,
        ssl_context=_server_context(smtp_cert),
        # aiosmtpd does not count implicit TLS as TLS for AUTH; the link is encrypted anyway.
        auth_required=True, auth_require_tls=False, authenticator=_authenticator,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        yield from _run(controller, SmtpServer("127.0.0.1", port, handler, ca_file=smtp_cert[0],
                                           username=USERNAME, password=PASSWORD))


@pytest.fixture
def smtp_wrong_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    """STARTTLS with a certificate the client trusts (ca_file) but for another host name."""
    cert = make_cert(tmp_path_factory.mktemp("smtp-other-cert"), ["mail.example.vn"])
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            tls_context=_server_context(cert), require_starttls=True)
    yield from _run(controller, SmtpServer("127.0.0.1", port, handler, ca_file=cert[0]))


@pytest.fixture
def smtp_down_port() -> int:
    """A loopback port where nothing listens: connection refused."""
    return free_port()


class OAuth2Recorder(Recorder):
    """Also speaks the server side of SASL XOAUTH2 the way Gmail does: a bad token gets
    a 334 carrying a JSON error, then 535 once the client answers."""

    async def auth_XOAUTH2(self, server, args) -> AuthResult:
        try:
            fields = dict(f.split("=", 1) for f in
                          base64.b64decode(args[1]).decode().split("\x01") if f)
        except (IndexError, ValueError):
            return AuthResult(success=False, handled=False)
        if fields.get("user") == USERNAME and fields.get("auth") == f"Bearer {OAUTH2_TOKEN}":
            return AuthResult(success=True)
        await server.challenge_auth('{"status":"401","schemes":"bearer"}')
        return AuthResult(success=False, handled=False)  # not handled: aiosmtpd says 535


@pytest.fixture
def smtp_oauth2(smtp_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    yield from _starttls_with_auth(OAuth2Recorder(), smtp_cert, None,
                                   auth_exclude_mechanism=["LOGIN", "PLAIN"])
