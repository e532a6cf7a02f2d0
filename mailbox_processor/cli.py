"""The `mailbox-processor` command: thin click wrappers around the stages.

Errors reach the user as one line, never a traceback: ConfigError exits 2,
TransientError exits 1.
"""

from __future__ import annotations

import getpass
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from . import config as config_mod
from .config import Config
from .errors import ConfigError, MailboxError, TransientError
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
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
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
        Path(out).write_bytes(raw)
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
@pass_obj
def list_(obj: _Obj, fmt: str, status: str | None) -> None:
    """List stored messages (the anonymised copy; quarantined mail too)."""
    rows = [r.as_json() for r in obj.store().rows(status=status)]
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
    for kind in row.withheld:
        click.echo(f"{'file:':<10} 1 tệp {kind} — chỉ có trong bản niêm phong")
    if row.text is not None:
        click.echo("")
        click.echo(row.text)


# ===== classification commands (issue 4) =====

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
