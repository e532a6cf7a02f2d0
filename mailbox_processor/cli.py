"""The `mailbox-processor` command: thin click wrappers around the stages.

Errors reach the user as one line, never a traceback: ConfigError exits 2,
TransientError exits 1.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import config as config_mod
from .config import Config
from .errors import ConfigError, MailboxError, TransientError
from .models import FLAGS
from .store import Store


class _Obj:
    """Lazily loaded config and store, so `keys generate` works without a config file."""

    def __init__(self, path: str | None) -> None:
        self.path = config_mod.config_path(path)
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = config_mod.load(self.path)
        return self._config

    def store(self) -> Store:
        return Store.open(self.config.store.path)


pass_obj = click.make_pass_decorator(_Obj)


@click.group()
@click.option("--config", "config_path", metavar="PATH", help="Config file (default "
              f"${config_mod.ENV_VAR}, else {config_mod.DEFAULT_PATH}).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="mailbox-processor")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Hòm thư số: a confidential feedback mailbox."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    # -v raises only our own loggers: libraries log whole messages at DEBUG (imapclient
    # dumps FETCH responses, From and body included), and our logs must never show one.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("mailbox_processor").setLevel(level)
    ctx.obj = _Obj(config_path)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except ConfigError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except TransientError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except MailboxError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except sqlite3.Error as e:  # e.g. "database is locked", a damaged file
        click.echo(f"error: the store: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _passphrase(passphrase_file: str | None, *, confirm: bool) -> bytes:
    if passphrase_file:
        try:
            value = Path(passphrase_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise ConfigError(f"--passphrase-file {passphrase_file}: {e.strerror}") from None
    else:
        value = click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    if confirm and len(value) < 8:
        raise ConfigError("the passphrase must have at least 8 characters")
    return value.encode("utf-8")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# ----- keys -----------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """The archive key pair that seals every original."""


@keys.command("generate")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False), help="Read the passphrase "
              "from this file instead of asking (for automation).")
def keys_generate(out: str, passphrase_file: str | None) -> None:
    """Make an archive key pair; the private key is encrypted with a passphrase."""
    from . import seal

    public, private = seal.generate(Path(out), _passphrase(passphrase_file, confirm=True))
    click.echo(f"public key:  {public}  (set [privacy] public_key_file to this)")
    click.echo(f"private key: {private}  (move it OFF this server; keep the passphrase apart)")


@cli.command()
@click.argument("ref")
@click.option("--private-key", required=True, type=click.Path(dir_okay=False))
@click.option("--passphrase-file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Write the original here "
              "(default: standard output).")
@pass_obj
def reveal(obj: _Obj, ref: str, private_key: str, passphrase_file: str | None,
           out: str | None) -> None:
    """Open the sealed original of REF (audited)."""
    from . import seal

    ref = ref.upper()
    store = obj.store()
    blob = store.sealed_blob(ref)
    if blob is None:
        raise ConfigError(f"{ref}: no sealed original in the store (unknown or purged)")
    key = seal.load_private(private_key, _passphrase(passphrase_file, confirm=False))
    raw, _identity = seal.open_seal(blob, ref, key)
    store.audit(_user(), "reveal", ref)
    if out:
        # The original names the sender: readable by this user only, and never over a file.
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise ConfigError(f"--out {out}: {e.strerror}") from None
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        click.echo(f"{ref}: original written to {out}", err=True)
    else:
        sys.stdout.buffer.write(raw)


# ----- intake ---------------------------------------------------------------------


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Drain the mailbox once and exit.")
@pass_obj
def fetch(obj: _Obj, once: bool) -> None:
    """Fetch every new message, store it, and exit."""
    from . import daemon

    summary = daemon.fetch_once(obj.config, progress=sys.stderr.isatty())
    click.echo(summary.line())


@cli.command()
@pass_obj
def run(obj: _Obj) -> None:
    """The daemon: IMAP IDLE or polling until SIGTERM."""
    from . import daemon

    daemon.run(obj.config)


# ----- reading the store ------------------------------------------------------------


def _table(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        flags = ",".join(r["flags"])
        what = f"quarantine:{r.get('error')}" if r["quarantined"] else f"{r['category']} {r['urgency']}"
        click.echo(f"{r['ref']}  {r['date']}  {r['location'] or '-':<8} {what}  "
                   f"{r['status'] or ''} {flags}".rstrip())


@cli.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--status", type=click.Choice(["new", "forwarded", "answered", "closed"]))
@click.option("--flag", type=click.Choice([*FLAGS, "quarantined"]),
              help="Only flagged mail of this kind (the digest lists at most 30 codes of each).")
@pass_obj
def list_(obj: _Obj, fmt: str, status: str | None, flag: str | None) -> None:
    """List stored messages (the anonymised copy; quarantined mail too)."""
    rows = [r.as_json() for r in obj.store().rows(status=status)]
    if flag == "quarantined":
        rows = [r for r in rows if r["quarantined"]]
    elif flag:
        rows = [r for r in rows if flag in r["flags"]]
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False))
    else:
        _table(rows)


@cli.command()
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--attachments", "attachments_dir", type=click.Path(file_okay=False),
              help="Write the scrubbed photos into this folder.")
@pass_obj
def show(obj: _Obj, ref: str, fmt: str, attachments_dir: str | None) -> None:
    """Show one message's readable copy."""
    store = obj.store()
    row = store.row(ref)
    if row is None:
        raise ConfigError(f"{ref.upper()}: no such reference code in the store")
    if attachments_dir:
        out = Path(attachments_dir)
        with _os_errors("show --attachments"):
            out.mkdir(parents=True, exist_ok=True)
            for img in store.images(row.ref):
                (out / f"{row.ref}-{img.name}").write_bytes(img.data)
    d = row.as_json(full=True)
    if fmt == "json":
        click.echo(json.dumps(d, ensure_ascii=False))
        return
    for key in ("ref", "date", "location", "category", "urgency", "status"):
        click.echo(f"{key + ':':<10} {d[key] if d[key] is not None else '-'}")
    if row.quarantined:
        click.echo(f"{'quarantine:':<10} {row.error_kind} (the original is only in the seal)")
    if row.flags:
        click.echo(f"{'flags:':<10} {', '.join(row.flags)}")
    for name, ctype, w, h in row.images:
        click.echo(f"{'photo:':<10} {name} ({ctype}, {w}×{h})")
    from .anonymise import describe_withheld  # here: its imports are heavy for other commands

    for kind in row.withheld:
        click.echo(f"{'file:':<10} {describe_withheld(kind)} — chỉ có trong bản niêm phong")
    if row.text is not None:
        click.echo("")
        click.echo(row.text)


# ===== classification commands (issue 4) =====

# Imported here, not at the top, so this section stays self-contained.
import os as _os  # noqa: E402

from .classify import CATEGORIES as _CATEGORIES  # noqa: E402


def _lexicon(obj: _Obj, categories: str | None) -> Any:
    """--categories, else the config's [classify] categories_file, else the shipped file.

    `classify --eval` must work on a machine with no config file: a missing
    default config means the shipped lexicon; an explicit --config must load.
    """
    from . import classify

    if categories:
        return classify.load_lexicon(categories)
    root = click.get_current_context().find_root()
    explicit = bool(root.params.get("config_path") or _os.environ.get(config_mod.ENV_VAR))
    if explicit or obj.path.exists():
        return classify.load_lexicon(obj.config.classify.categories_file)
    return classify.load_lexicon(None)


@cli.command("classify")
@click.option("--eval", "eval_csv", type=click.Path(dir_okay=False), metavar="CSV",
              help="Measure on a labelled CSV (columns text, category, urgency).")
@click.option("--strip-accents", is_flag=True, help="Remove diacritics from the texts first.")
@click.option("--categories", type=click.Path(dir_okay=False), metavar="FILE",
              help="Use this categories file instead of the configured or shipped one.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_obj
def classify_cmd(obj: _Obj, eval_csv: str | None, strip_accents: bool, categories: str | None,
                 fmt: str) -> None:
    """Measure the classifier on a labelled CSV, or classify text read from stdin."""
    from . import classify, evaluate

    lexicon = _lexicon(obj, categories)
    if eval_csv is None:
        text = sys.stdin.read()
        if strip_accents:
            text = classify.strip_accents(text)
        k = classify.classify_text(text, lexicon)
        d = {"category": k.category, "urgency": k.urgency, "confidence": k.confidence,
             "flags": sorted(k.flags), "cues": list(k.cues)}
        if fmt == "json":
            click.echo(json.dumps(d, ensure_ascii=False))
        else:
            for key, value in d.items():
                shown = ", ".join(value) if isinstance(value, list) else value
                click.echo(f"{key + ':':<11} {shown}")
        return
    report = evaluate.evaluate(evaluate.read_csv(eval_csv), lexicon, strip_accents)
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        click.echo("\n".join(report.lines()))


@cli.command()
@click.argument("ref")
@click.option("--category", required=True, metavar="SLUG",
              type=click.Choice(list(_CATEGORIES)))
@click.option("--urgency", type=click.Choice(["khan", "som", "thuong"]))
@pass_obj
def label(obj: _Obj, ref: str, category: str, urgency: str | None) -> None:
    """Correct the category (and urgency) of REF; the correction wins everywhere."""
    who = _user()
    obj.store().add_label(ref, category, urgency, who)
    click.echo(f"{ref.upper()}: {category}{' ' + urgency if urgency else ''} (by {who})")


EXPORT_COLUMNS = ("text", "category", "urgency", "ref", "date", "location", "flags",
                  "corrected")


def _export_labelled(obj: _Obj, out: str) -> None:
    """`export --labelled FILE`: the anonymised texts with their final labels, as CSV.

    Columns start with text, category, urgency so the file feeds straight back
    into `classify --eval`; staff corrections win over the classifier.
    """
    import csv

    store = obj.store()
    corrected = store.labelled_refs()
    rows = [r for r in store.rows() if not r.quarantined and r.text is not None]
    try:
        # The readable copy is still citizens' words: keep the file private.
        fd = _os.open(out, _os.O_WRONLY | _os.O_CREAT | _os.O_TRUNC, 0o600)
        with _os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(EXPORT_COLUMNS)
            for r in rows:
                w.writerow([r.text, r.category, r.urgency, r.ref, r.date, r.location or "",
                            ",".join(r.flags), int(r.ref in corrected)])
    except OSError as e:
        raise ConfigError(f"--labelled {out}: cannot write: {e.strerror}") from None
    click.echo(f"{len(rows)} labelled texts written to {out}", err=True)

# ===== digest commands (issue 5) =====


@cli.group("digest")
def digest_group() -> None:
    """The leaders' digest of new submissions."""


@digest_group.command("send")
@click.option("--dry-run", is_flag=True, help="Build and measure the digest; send and mark nothing.")
@pass_obj
def digest_send(obj: _Obj, dry_run: bool) -> None:
    """Send one digest of everything not yet in a digest (exactly once)."""
    from . import digest
    from .daemon import single_instance

    with single_instance(obj.config, "digest"):
        result = digest.send(obj.config, obj.store(), dry_run=dry_run)
    click.echo(result.line())


@digest_group.command("preview")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="HTML file; the text version goes next to it with .txt.")
@pass_obj
def digest_preview(obj: _Obj, out: str) -> None:
    """Write the next digest (FILE and FILE.txt) without sending or marking anything."""
    from . import digest

    html, text = digest.preview(obj.config, obj.store(), Path(out))
    click.echo(f"preview written: {html} and {text}")


# ===== qr command (issue 6) =====


@cli.command("qr")
@click.option("--location", "slug", metavar="SLUG", help="One location from [[locations]].")
@click.option("--all", "all_", is_flag=True, help="Every location, and all_posters.pdf.")
@click.option("--out", required=True, metavar="DIR", help="Folder (made if missing).")
@click.option("--no-caption", is_flag=True, help="PNG without the name and address under it.")
@pass_obj
def qr_command(obj: _Obj, slug: str | None, all_: bool, out: str, no_caption: bool) -> None:
    """QR codes (PNG, SVG) and A4 posters (PDF) that open a mail to the mailbox."""
    from . import qr

    if bool(slug) == all_:
        raise ConfigError("qr: give either --location SLUG or --all")
    config = obj.config
    if all_:
        written = qr.write_all(config, Path(out), caption=not no_caption, progress=_progress)
    else:
        code = qr.make_code(config, qr.find_location(config, slug or ""))
        written = qr.write_location(config, code, Path(out), caption=not no_caption)
    for path in written:
        click.echo(str(path))


def _progress(items: Any) -> Any:
    """A progress bar on stderr for many locations; a few finish before one is worth reading."""
    from .qr import PROGRESS_FROM

    if len(items) < PROGRESS_FROM:
        yield from items
        return
    with click.progressbar(items, label="Posters", file=sys.stderr) as bar:
        yield from bar


# ===== operations commands (issue 7) =====


class _Asker:
    """A value from its flag, else a prompt (in the operator's language), else its default."""

    def __init__(self, interactive: bool, t: Callable[[str, str], str]) -> None:
        self.interactive = interactive
        self.t = t

    def __call__(self, given: Any, flag: str, vi: str, en: str, default: Any = None,
                 hide: bool = False, kind: Any = None) -> Any:
        if given is not None:
            return given
        if not self.interactive:
            if default is None:
                raise ConfigError(f"init: {flag} is required with --non-interactive")
            return default
        return click.prompt(self.t(vi, en), default=default, hide_input=hide, type=kind, err=True)


SECURITY_CHOICE = click.Choice(["tls", "starttls", "none"])
IMAP_PORTS = {"tls": 993, "starttls": 143, "none": 143}
SMTP_PORTS = {"tls": 465, "starttls": 587, "none": 25}


def _server_answers(ask: _Asker, kind: str, given: dict[str, Any], address: str,
                    config_dir: Path) -> dict[str, Any]:
    """host, port, security, username, password_file for [imap] or [smtp]."""
    name = kind.upper()
    host = ask(given["host"], f"--{kind}-host", f"Máy chủ {name}", f"{name} server")
    security = ask(given["security"], f"--{kind}-security", f"Bảo mật {name} (tls/starttls/none)",
                   f"{name} security (tls/starttls/none)", default="tls", kind=SECURITY_CHOICE)
    ports = IMAP_PORTS if kind == "imap" else SMTP_PORTS
    port = ask(given["port"], f"--{kind}-port", f"Cổng {name}", f"{name} port",
               default=ports[security], kind=int)
    username = ask(given["username"], f"--{kind}-username",
                   f"Tên đăng nhập {name} ('-' nếu không cần)", f"{name} username ('-' for none)",
                   default=address)
    table: dict[str, Any] = {"host": host, "port": port, "security": security}
    if given["ca_file"]:
        table["ca_file"] = given["ca_file"]
    if given["oauth2_token_command"]:  # Gmail, Microsoft 365: no password to ask for
        table.update(username=username, auth="xoauth2",
                     oauth2_token_command=given["oauth2_token_command"])
    elif username not in ("", "-"):
        table["username"] = username
        table["password_file"] = str(Path(given["password_file"] or config_dir / f"{kind}-password"))
    return table


def _password(ask: _Asker, kind: str, path: Path) -> str | None:
    """The password to write into `path`, or None when the file is there already."""
    if path.exists():
        return None
    if not ask.interactive:
        raise ConfigError(f"init: {path} does not exist; write the {kind.upper()} password into it "
                          "(mode 0600) or run init without --non-interactive")
    return ask(None, "", f"Mật khẩu {kind.upper()} (lưu vào {path})",
               f"{kind.upper()} password (saved to {path})", hide=True)


def _locations(values: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        for item in value.split(";"):
            slug, sep, name = item.strip().partition("=")
            if not sep or not slug.strip() or not name.strip():
                raise ConfigError(f"init: --location {item.strip()!r} must look like tdp1=Tổ dân phố 1")
            pairs.append((slug.strip(), name.strip()))
    return pairs


@contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """A file that cannot be written is one line for the operator, not a traceback."""
    try:
        yield
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise ConfigError(f"{what}:{where}: {e.strerror or type(e).__name__}") from None


def _init_passphrase(passphrase_file: str | None, ask: _Asker) -> bytes:
    if passphrase_file or not ask.interactive:
        if not passphrase_file:
            raise ConfigError("init: --passphrase-file is required with --non-interactive")
        return _passphrase(passphrase_file, confirm=True)
    value = click.prompt(ask.t("Mật khẩu cho khóa lưu trữ (ít nhất 8 ký tự)",
                               "Passphrase for the archive key (at least 8 characters)"),
                         hide_input=True, confirmation_prompt=True, err=True)
    if len(value) < 8:
        raise ConfigError("the passphrase must have at least 8 characters")
    return value.encode("utf-8")


@cli.command()
@click.option("--address", help="The mailbox address the QR codes point to.")
@click.option("--name", help="The mailbox's display name.")
@click.option("--imap-host")
@click.option("--imap-port", type=int)
@click.option("--imap-security", type=SECURITY_CHOICE)
@click.option("--imap-username", help="'-' for no login.")
@click.option("--imap-password-file", type=click.Path(dir_okay=False))
@click.option("--imap-folder")
@click.option("--imap-ca-file", type=click.Path(dir_okay=False), help="A private CA for the server.")
@click.option("--imap-oauth2-token-command", metavar="CMD",
              help="Log in with XOAUTH2 (Gmail, Microsoft 365): CMD prints a fresh token.")
@click.option("--smtp-host")
@click.option("--smtp-port", type=int)
@click.option("--smtp-security", type=SECURITY_CHOICE)
@click.option("--smtp-username", help="'-' for no login (a local relay).")
@click.option("--smtp-password-file", type=click.Path(dir_okay=False))
@click.option("--smtp-from", help="Default: NAME <ADDRESS>.")
@click.option("--smtp-ca-file", type=click.Path(dir_okay=False), help="A private CA for the server.")
@click.option("--smtp-oauth2-token-command", metavar="CMD",
              help="Log in with XOAUTH2: CMD prints a fresh token.")
@click.option("--digest-to", help="Leaders who get the digest, comma-separated.")
@click.option("--location", "locations", multiple=True, help="slug=Name (repeat, or ';'-separated).")
@click.option("--timezone", default=None)
@click.option("--store-path", type=click.Path(dir_okay=False))
@click.option("--pepper-file", type=click.Path(dir_okay=False))
@click.option("--public-key-file", type=click.Path(dir_okay=False))
@click.option("--private-key-dir", type=click.Path(file_okay=False),
              help="Where the archive PRIVATE key is written (then move it off the server).")
@click.option("--passphrase-file", type=click.Path(dir_okay=False))
@click.option("--no-test", is_flag=True, help="Do not log in to IMAP and SMTP.")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@click.option("--non-interactive", "--yes", "non_interactive", is_flag=True,
              help="Ask nothing: flags and defaults only.")
@pass_obj
def init(obj: _Obj, **o: Any) -> None:
    """Set up: config file, pepper, archive key pair, connection test."""
    from . import anonymise, ops

    t = ops.sayer(ops.language())
    ask = _Asker(not o["non_interactive"], t)
    path, config_dir = obj.path, obj.path.parent
    if path.exists() and not o["force"]:  # before any question, not after twenty
        raise ConfigError(f"{path} already exists; use --force to replace it")
    address = ask(o["address"], "--address", "Địa chỉ hòm thư", "Mailbox address")
    name = ask(o["name"], "--name", "Tên hòm thư", "Mailbox name",
               default="Hòm thư số – Ủy ban MTTQ phường")
    imap = _server_answers(ask, "imap", _given(o, "imap"), address, config_dir)
    imap["folder"] = o["imap_folder"] or "INBOX"
    smtp = _server_answers(ask, "smtp", _given(o, "smtp"), address, config_dir)
    smtp["from"] = o["smtp_from"] or f"{name} <{address}>"
    digest_to = ask(o["digest_to"], "--digest-to", "Gửi bản tổng hợp tới (cách nhau bởi dấu phẩy)",
                    "Send digests to (comma-separated)")
    locations = _locations(o["locations"] or (ask(None, "--location",
                           "Các điểm dán mã QR (tdp1=Tổ dân phố 1; tdp2=...)",
                           "QR code locations (tdp1=Tổ dân phố 1; tdp2=...)",
                           default="tdp1=Tổ dân phố 1"),))
    state = Path("/var/lib/mailbox-processor")
    store_path = ask(o["store_path"], "--store-path", "Tệp kho dữ liệu", "Store file",
                     default=str(state / "store.sqlite3"))
    pepper_file = ask(o["pepper_file"], "--pepper-file", "Tệp pepper", "Pepper file",
                      default=str(state / "pepper"))
    public_file = Path(ask(o["public_key_file"], "--public-key-file", "Tệp khóa công khai",
                           "Public key file", default=str(config_dir / "archive-public.pem")))
    mailbox: dict[str, object] = {"address": address, "name": name}
    if o["timezone"]:
        mailbox["timezone"] = o["timezone"]
    sections: dict[str, dict[str, object]] = {
        "mailbox": mailbox, "imap": imap, "smtp": smtp,
        "digest": {"to": [a.strip() for a in digest_to.split(",") if a.strip()]},
        "store": {"path": store_path},
        "privacy": {"public_key_file": str(public_file), "pepper_file": pepper_file},
    }
    text = ops.config_text(sections, locations)
    # Validate everything before writing anything: a typo must not leave half a set-up.
    import tomllib

    config_mod.parse(tomllib.loads(text), path)

    passwords = {kind: _password(ask, kind, Path(str(table["password_file"])))
                 for kind, table in (("imap", imap), ("smtp", smtp)) if "password_file" in table}
    with _os_errors("init"):
        ops.ensure_writable([path, Path(store_path), Path(pepper_file), public_file])
        private = None
        if public_file.exists():
            click.echo(t(f"Dùng khóa công khai có sẵn {public_file}",
                         f"Using the existing public key {public_file}"), err=True)
        else:
            private_dir = Path(ask(o["private_key_dir"], "--private-key-dir",
                                   "Thư mục ghi khóa BÍ MẬT (sẽ chuyển khỏi máy chủ)",
                                   "Folder for the PRIVATE key (to be moved off this server)",
                                   default=str(Path.cwd() / "archive-key")))
            private = ops.make_keys(private_dir, public_file, _init_passphrase(o["passphrase_file"], ask))
        for kind, password in passwords.items():
            if password is not None:
                ops.write_secret(Path(str(sections[kind]["password_file"])), password)
        ops.write_config(path, text, force=o["force"])
        anonymise.load_pepper(pepper_file)  # creates it, 0600
        Store.open(store_path).close()
    click.echo(t(f"Đã ghi {path}", f"Wrote {path}"))
    if private is not None:
        click.echo(t(
            f"Khóa BÍ MẬT: {private}\n"
            "  → Chép nó sang USB hoặc máy tính không nối mạng, rồi XÓA khỏi máy chủ này.\n"
            "  → Giữ mật khẩu của khóa ở nơi khác với khóa. Mất khóa hoặc mật khẩu thì không\n"
            "    mở lại được thư gốc và không trả lời được người dân.",
            f"PRIVATE key: {private}\n"
            "  → Copy it to a USB stick or an offline computer, then DELETE it from this server.\n"
            "  → Keep its passphrase apart from the key. Without both, no original can be\n"
            "    opened again and no citizen can be answered."))
    if o["no_test"]:
        return
    config = config_mod.load(path)
    results = [ops.check_imap(config, t), ops.check_smtp(config, t)]
    for result in results:
        click.echo(result.line())
    if not all(r.ok for r in results):
        click.echo(t("Sửa rồi chạy: mailbox-processor check", "Fix it, then run: mailbox-processor check"))
        sys.exit(1)


def _given(o: dict[str, Any], kind: str) -> dict[str, Any]:
    keys = ("host", "port", "security", "username", "password_file", "ca_file",
            "oauth2_token_command")
    return {key: o[f"{kind}_{key}"] for key in keys}


@cli.command()
@pass_obj
def check(obj: _Obj) -> None:
    """Validate the config and test every connection, file and key (nothing is sent)."""
    from . import ops

    ok = True
    for result in ops.run_checks(obj.path, ops.sayer(ops.language())):
        click.echo(result.line())
        ok = ok and result.ok
    if not ok:
        sys.exit(1)


@cli.command()
@click.argument("ref")
@click.option("--private-key", required=True, type=click.Path(dir_okay=False))
@click.option("--text-file", required=True, type=click.Path(dir_okay=False),
              help="The leader's answer, UTF-8 text.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False))
@pass_obj
def reply(obj: _Obj, ref: str, private_key: str, text_file: str, passphrase_file: str | None) -> None:
    """Answer the citizen who wrote REF (audited; the address is never shown)."""
    from . import ops

    try:
        text = Path(text_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--text-file {text_file}: cannot read it as UTF-8 text ({e})") from None
    ref = ref.upper()
    ops.send_reply(obj.config, obj.store(), ref, Path(private_key),
                   _passphrase(passphrase_file, confirm=False), text, _user())
    click.echo(f"{ref}: reply sent; status answered")


@cli.command("status")
@click.argument("ref")
@click.argument("new_status", metavar="forwarded|answered|closed",
                type=click.Choice(["forwarded", "answered", "closed"]))
@click.option("--note", help="A short note for the digest (no personal details).")
@pass_obj
def status_command(obj: _Obj, ref: str, new_status: str, note: str | None) -> None:
    """Record what happened to REF; the next digest shows the change."""
    obj.store().set_status(ref, new_status, note, _user())
    click.echo(f"{ref.upper()}: {new_status}")


@cli.command("export")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="YYYY-MM-DD (received on or after).")
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv")
@click.option("--excel", is_flag=True, help="Begin with a BOM, so that Excel reads UTF-8.")
@click.option("--out", type=click.Path(dir_okay=False), help="Default: standard output.")
@click.option("--labelled", type=click.Path(dir_okay=False), metavar="FILE",
              help="Instead: write text,category,urgency,... with staff corrections (issue 4).")
@pass_obj
def export(obj: _Obj, since: Any, fmt: str, excel: bool, out: str | None,
           labelled: str | None) -> None:
    """The anonymised columns only (ref, date, location, category, urgency, status, flags, text)."""
    if labelled:
        _export_labelled(obj, labelled)
        return
    from . import ops

    text = ops.export_csv(obj.store(), since.date() if since else None, excel)
    if out:
        with _os_errors("export --out"):
            Path(out).write_text(text, encoding="utf-8", newline="")
    else:
        sys.stdout.write(text)


@cli.command()
@click.option("--older-than", "days", type=click.IntRange(min=1),
              help="Days (default: [retention] days).")
@click.option("--all", "everything", is_flag=True, help="Delete the readable copies too.")
@pass_obj
def purge(obj: _Obj, days: int | None, everything: bool) -> None:
    """Delete sealed originals (and their IMAP copies) older than the retention period."""
    from . import retention

    config = obj.config

    def progress(folder: str, done: int, total: int) -> None:
        # Hashing every old message on the server can take minutes on a large mailbox.
        if sys.stderr.isatty():
            click.echo(f"\r{folder}: {done}/{total} old messages checked", err=True,
                       nl=done == total)

    report = retention.purge(config, obj.store(), days or config.retention.days, everything,
                             on_progress=progress)
    what = "seals and readable copies" if report.readable else "seals"
    click.echo(f"purged {what} of mail received before {report.cutoff}: {report.sealed} sealed, "
               f"{report.imap_deleted} deleted on the IMAP server")
