"""TOML configuration into frozen dataclasses, validated once at start.

Every error is a ConfigError naming the file and the key and saying what was
expected. Unknown keys are errors too: a misspelt key silently ignored is how
a ward ends up with a setting it believes it has.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import subprocess
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, TransientError

DEFAULT_PATH = "/etc/mailbox-processor/config.toml"
ENV_VAR = "MAILBOX_PROCESSOR_CONFIG"
SLUG_RE = re.compile(r"^[a-z0-9-]+$")
ADDRESS_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
SECURITY = ("tls", "starttls", "none")
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Mailbox:
    address: str
    name: str
    timezone: str = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True)
class Server:
    """What IMAP and SMTP have in common: where, how securely, and who."""

    host: str
    port: int
    security: str = "tls"
    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    ca_file: str | None = None  # extra CA bundle, e.g. for a ward's own certificate
    timeout_seconds: float = 60.0
    # Gmail and Microsoft 365 switch password logins off for IMAP and SMTP alike.
    auth: str = "password"  # password | xoauth2
    oauth2_token_file: str | None = None
    oauth2_token_command: str | None = None


@dataclass(frozen=True)
class Imap(Server):
    port: int = 993
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    # What to do with a message once it is committed: "move" to processed_folder or "delete".
    after_processing: str = "move"
    batch_size: int = 50
    max_message_bytes: int = 25 * 1024 * 1024
    poll_seconds: int = 60
    idle: bool = True


@dataclass(frozen=True)
class Smtp(Server):
    port: int = 465
    from_: str = ""


@dataclass(frozen=True)
class Digest:
    to: tuple[str, ...] = ()
    language: str = "vi"  # vi | en
    send_empty: bool = True
    attach_photos: bool = False
    max_bytes: int = 100_000  # Gmail clips larger mail
    item_chars: int = 1500


@dataclass(frozen=True)
class Alerts:
    to: tuple[str, ...] = ()  # empty: the digest recipients
    enabled: bool = True
    # During a long drain, urgent items are alerted this long after the first one, in
    # one mail; otherwise at the end of the drain. Keep it well under two minutes.
    batch_seconds: int = 30
    # Who hears that intake has stopped (login refused at once, any other connection
    # failure after intake_down_minutes); empty: the alert recipients.
    operators: tuple[str, ...] = ()
    intake_down_minutes: int = 30


@dataclass(frozen=True)
class Store:
    path: str = "/var/lib/mailbox-processor/store.sqlite3"


@dataclass(frozen=True)
class Privacy:
    public_key_file: str = "/etc/mailbox-processor/archive-public.pem"
    pepper_file: str = "/var/lib/mailbox-processor/pepper"
    redact: tuple[str, ...] = ("name", "email", "phone", "id")


@dataclass(frozen=True)
class Parse:
    max_seconds: float = 30.0
    max_depth: int = 20
    max_parts: int = 200
    max_decoded_bytes: int = 50 * 1024 * 1024


@dataclass(frozen=True)
class Classify:
    categories_file: str | None = None  # None: the shipped config/categories.toml


@dataclass(frozen=True)
class Qr:
    tag: str = "plus"  # plus | subject | none
    subject: str = "Góp ý"
    body: str = ""
    error_correction: str = "M"  # L | M | Q | H
    size_cm: float = 6.0
    dpi: int = 300


@dataclass(frozen=True)
class Acknowledge:
    enabled: bool = True
    per_day: int = 3


@dataclass(frozen=True)
class Retention:
    days: int = 365
    purge_daily: bool = False


@dataclass(frozen=True)
class Location:
    slug: str
    name: str


@dataclass(frozen=True)
class Config:
    path: Path
    mailbox: Mailbox
    imap: Imap
    store: Store
    privacy: Privacy
    smtp: Smtp | None = None
    digest: Digest = field(default_factory=Digest)
    alerts: Alerts = field(default_factory=Alerts)
    parse: Parse = field(default_factory=Parse)
    classify: Classify = field(default_factory=Classify)
    qr: Qr = field(default_factory=Qr)
    acknowledge: Acknowledge = field(default_factory=Acknowledge)
    retention: Retention = field(default_factory=Retention)
    locations: tuple[Location, ...] = ()

    def location(self, slug: str) -> Location | None:
        return next((loc for loc in self.locations if loc.slug == slug), None)

    def secret(self, section: str) -> str | None:
        """The password for [imap] or [smtp], or None when the server is used without login."""
        server: Server | None = getattr(self, section)
        if server is None or server.username is None:
            return None
        return _read_secret(self.path, section, server)

    def oauth2_token(self, section: str) -> str:
        """A fresh access token for [imap] or [smtp] with auth = "xoauth2".

        Read again at every login: the file or command is what keeps it fresh
        (tokens last about an hour). TransientError when it cannot be had now.
        """
        server: Server = getattr(self, section)
        if server.oauth2_token_file:
            try:
                return Path(server.oauth2_token_file).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise TransientError(
                    f"{section}.oauth2_token_file {server.oauth2_token_file}: {e.strerror}"
                ) from None
        try:
            out = subprocess.run(server.oauth2_token_command or "", shell=True,
                                 capture_output=True, text=True, timeout=60, check=True)
        except (subprocess.SubprocessError, OSError) as e:
            raise TransientError(
                f"{section}.oauth2_token_command failed: {type(e).__name__}") from None
        return out.stdout.strip()

    @property
    def alert_recipients(self) -> tuple[str, ...]:
        return self.alerts.to or self.digest.to

    @property
    def operator_recipients(self) -> tuple[str, ...]:
        return self.alerts.operators or self.alert_recipients


SECTIONS: dict[str, type] = {
    "mailbox": Mailbox,
    "imap": Imap,
    "smtp": Smtp,
    "digest": Digest,
    "alerts": Alerts,
    "store": Store,
    "privacy": Privacy,
    "parse": Parse,
    "classify": Classify,
    "qr": Qr,
    "acknowledge": Acknowledge,
    "retention": Retention,
}
REQUIRED_SECTIONS = ("mailbox", "imap", "store", "privacy")


def config_path(given: str | None) -> Path:
    return Path(given or os.environ.get(ENV_VAR) or DEFAULT_PATH)


def load(path: Path) -> Config:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (set --config or ${ENV_VAR})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse(data, path)


def parse(data: dict[str, Any], path: Path) -> Config:
    unknown = set(data) - set(SECTIONS) - {"locations"}
    if unknown:
        raise ConfigError(f"{path}: unknown section [{sorted(unknown)[0]}]")
    for name in REQUIRED_SECTIONS:
        if name not in data:
            raise ConfigError(f"{path}: missing section [{name}]")
    sections = {
        name: _section(cls, data[name], path, name)
        for name, cls in SECTIONS.items()
        if name in data
    }
    locations = _locations(data.get("locations", []), path)
    config = Config(path=path, locations=locations, **sections)
    _validate(config)
    return config


def _section(cls: type, table: object, path: Path, name: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name.rstrip("_"): f for f in dataclasses.fields(cls)}
    unknown = set(table) - set(fields)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"{path}: unknown key {name}.{key}")
    values = {}
    for key, f in fields.items():
        where = f"{path}: {name}.{key}"
        if key not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where} is required")
            continue
        values[f.name] = _coerce(table[key], hints[f.name], where)
    return cls(**values)


def _coerce(value: object, hint: object, where: str) -> object:
    """Check one TOML value against a field's type hint (str, int, float, bool, tuples)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None):
            continue
        if typing.get_origin(option) is tuple:
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ConfigError(f"{where} must be a list of strings")
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is bool and isinstance(value, bool):
            return value
        if option is str and isinstance(value, str):
            return value
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    expected = " or ".join(names.get(o, str(o)) for o in options if o is not type(None))
    raise ConfigError(f"{where} must be {expected}")


def _locations(items: object, path: Path) -> tuple[Location, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{path}: locations must be written as [[locations]] tables")
    locations = tuple(
        _section(Location, item, path, f"locations[{i}]") for i, item in enumerate(items)
    )
    seen: set[str] = set()
    for i, loc in enumerate(locations):
        if not SLUG_RE.match(loc.slug):
            raise ConfigError(
                f"{path}: locations[{i}].slug {loc.slug!r} must use only a-z, 0-9 and '-'"
            )
        if loc.slug in seen:
            raise ConfigError(f"{path}: locations[{i}].slug {loc.slug!r} is used twice")
        seen.add(loc.slug)
    return locations


def _validate(c: Config) -> None:
    p = c.path
    if not ADDRESS_RE.match(c.mailbox.address):
        raise ConfigError(f"{p}: mailbox.address {c.mailbox.address!r} is not an e-mail address")
    _check_timezone(p, c.mailbox.timezone)
    for name in ("imap", "smtp"):
        server = getattr(c, name)
        if server is not None:
            _check_server(p, name, server)
    if c.imap.after_processing not in ("move", "delete"):
        raise ConfigError(f"{p}: imap.after_processing must be \"move\" or \"delete\"")
    for key in ("batch_size", "max_message_bytes", "poll_seconds"):
        if getattr(c.imap, key) < 1:
            raise ConfigError(f"{p}: imap.{key} must be at least 1")
    # Both end up in From: headers, which cannot hold a line break.
    for key, value in (("mailbox.name", c.mailbox.name), ("smtp.from", c.smtp.from_ if c.smtp else "")):
        if any(ord(ch) < 32 for ch in value):
            raise ConfigError(f"{p}: {key} must be a single line of text")
    if c.smtp is not None and not ADDRESS_RE.match(_bare_address(c.smtp.from_)):
        raise ConfigError(f"{p}: smtp.from must be an address such as \"Hòm thư số <{c.mailbox.address}>\"")
    for key, addresses in (("digest.to", c.digest.to), ("alerts.to", c.alerts.to),
                           ("alerts.operators", c.alerts.operators)):
        for a in addresses:
            if not ADDRESS_RE.match(a):
                raise ConfigError(f"{p}: {key} has {a!r}, which is not an e-mail address")
    if c.digest.language not in ("vi", "en"):
        raise ConfigError(f"{p}: digest.language must be \"vi\" or \"en\"")
    bad = set(c.privacy.redact) - {"name", "email", "phone", "id"}
    if bad:
        raise ConfigError(
            f"{p}: privacy.redact has {sorted(bad)[0]!r}; allowed: name, email, phone, id"
        )
    if c.qr.tag not in ("plus", "subject", "none"):
        raise ConfigError(f"{p}: qr.tag must be \"plus\", \"subject\" or \"none\"")
    if c.qr.error_correction not in ("L", "M", "Q", "H"):
        raise ConfigError(f"{p}: qr.error_correction must be L, M, Q or H")
    if c.alerts.intake_down_minutes < 1:
        raise ConfigError(f"{p}: alerts.intake_down_minutes must be at least 1")
    if c.retention.days < 1:
        raise ConfigError(f"{p}: retention.days must be at least 1")


def _check_server(p: Path, name: str, s: Server) -> None:
    if s.security not in SECURITY:
        raise ConfigError(f"{p}: {name}.security must be \"tls\", \"starttls\" or \"none\"")
    if s.security == "none" and not is_loopback(s.host):
        raise ConfigError(
            f"{p}: {name}.security = \"none\" sends passwords and mail in clear text; "
            f"it is allowed only to 127.0.0.1, ::1 or localhost, not {s.host!r}"
        )
    if not 0 < s.port < 65536:
        raise ConfigError(f"{p}: {name}.port must be between 1 and 65535")
    if s.timeout_seconds <= 0:
        raise ConfigError(f"{p}: {name}.timeout_seconds must be positive")
    if s.password_file and s.password_env:
        raise ConfigError(f"{p}: {name}: give password_file or password_env, not both")
    if s.auth not in ("password", "xoauth2"):
        raise ConfigError(f"{p}: {name}.auth must be \"password\" or \"xoauth2\"")
    if s.auth == "xoauth2" and not (s.oauth2_token_file or s.oauth2_token_command):
        raise ConfigError(f"{p}: {name}.auth = \"xoauth2\" needs {name}.oauth2_token_file or "
                          f"{name}.oauth2_token_command")


def _check_timezone(p: Path, name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{p}: mailbox.timezone {name!r} is not a known time zone") from None


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bare_address(value: str) -> str:
    from email.utils import parseaddr

    return parseaddr(value)[1]


def _read_secret(p: Path, section: str, s: Server) -> str:
    """Password from password_file, password_env, or systemd's $CREDENTIALS_DIRECTORY."""
    if s.password_env:
        value = os.environ.get(s.password_env)
        if not value:
            raise ConfigError(
                f"{p}: {section}.password_env names ${s.password_env}, which is not set"
            )
        return value
    candidates: list[tuple[str, Path]] = []
    if s.password_file:
        candidates.append((f"{section}.password_file", Path(s.password_file)))
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds:
        candidates.insert(0, ("$CREDENTIALS_DIRECTORY", Path(creds) / f"{section}-password"))
    for key, file in candidates:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(f"{p}: {key}: cannot read {file}: {e.strerror}") from None
        if not value:
            raise ConfigError(f"{p}: {key}: {file} is empty")
        return value
    if s.password_file:
        raise ConfigError(f"{p}: {section}.password_file: {s.password_file} does not exist")
    raise ConfigError(
        f"{p}: [{section}] has a username but no password_file or password_env "
        f"(nor $CREDENTIALS_DIRECTORY/{section}-password)"
    )
