"""Running it for real: `check`, the pieces of `init`, `reply`, `status` and `export`.

cli.py stays thin: it asks and prints; the work is here. Nothing in this
module prints or logs an address: the one place one is handled (a reply)
takes it out of the seal and gives it straight to mail.send.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.parser
import email.policy
import io
import os
import shutil
import stat
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import ack, classify, mail, seal
from . import config as config_mod
from .config import Config
from .errors import ConfigError, MailboxError, TransientError
from .store import Store

# ----- language --------------------------------------------------------------------


def language(env: dict[str, str] | None = None) -> str:
    """"vi" when the locale is Vietnamese (LC_ALL wins over LANG, as in setlocale), else "en"."""
    env = os.environ if env is None else env
    value = env.get("LC_ALL") or env.get("LANG") or ""
    return "vi" if value.lower().startswith("vi") else "en"


Say = Callable[[str, str], str]


def sayer(lang: str) -> Say:
    """t(vietnamese, english) → the one for `lang`."""
    return (lambda vi, _en: vi) if lang == "vi" else (lambda _vi, en: en)


# ----- check -----------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    detail: str = ""  # ✓: a short fact; ✗: what went wrong
    fix: str = ""  # ✗: what to do

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        text = f"{mark} {self.what}"
        if self.detail:
            text += f": {self.detail}"
        if not self.ok and self.fix:
            text += f"\n    → {self.fix}"
        return text


def _attempt(what: str, fix: str, step: Callable[[], str]) -> Check:
    """One check; any failure at all becomes a ✗ line, never a traceback."""
    try:
        return Check(True, what, step())
    except MailboxError as e:
        return Check(False, what, str(e), fix)
    except Exception as e:  # a check must report, whatever a library raises
        return Check(False, what, f"{type(e).__name__}: {e}", fix)


def check_imap(config: Config, t: Say) -> Check:
    from .imap import Mailbox

    def step() -> str:
        mailbox = Mailbox.connect(config)
        mailbox.close()
        c = config.imap
        folders = [c.folder, c.quarantine_folder]
        if c.after_processing == "move":
            folders.insert(1, c.processed_folder)
        return t("đăng nhập được; thư mục ", "logged in; folders ") + ", ".join(folders)

    result = _attempt(t("IMAP: đăng nhập và thư mục", "IMAP login and folders"), "", step)
    return result if result.ok else _with_fix(result, _imap_fix(result.detail, config, t))


def _login_fix(section: str, config: Config, t: Say) -> str:
    if getattr(config, section).auth == "xoauth2":
        return t(f"làm mới mã OAuth ({section}.oauth2_token_file hoặc {section}.oauth2_token_command)",
                 f"renew the OAuth token ({section}.oauth2_token_file or "
                 f"{section}.oauth2_token_command)")
    return t(f"kiểm tra {section}.username và mật khẩu trong {section}.password_file",
             f"check {section}.username and the password in {section}.password_file")


def _imap_fix(detail: str, config: Config, t: Say) -> str:
    if "login refused" in detail:
        return _login_fix("imap", config, t)
    if "does not exist" in detail:
        return t("sửa imap.folder thành một thư mục có trên máy chủ (thường là INBOX)",
                 "set imap.folder to a folder the server has (usually INBOX)")
    if "certificate" in detail:
        return t("đặt imap.ca_file nếu máy chủ dùng chứng chỉ riêng",
                 "set imap.ca_file if the server uses its own certificate authority")
    return t("kiểm tra imap.host, imap.port và imap.security (tls: 993, starttls: 143)",
             "check imap.host, imap.port and imap.security (tls: 993, starttls: 143)")


def _with_fix(result: Check, fix: str) -> Check:
    return Check(result.ok, result.what, result.detail, fix)


def check_smtp(config: Config, t: Say) -> Check:
    def step() -> str:
        mail.check(config)
        smtp = mail.smtp_config(config)
        logs_in = smtp.username or smtp.auth == "xoauth2"
        login = t("đăng nhập được", "logged in") if logs_in else t("không cần đăng nhập",
                                                                     "no login")
        return t(f"EHLO được, {login}; chưa gửi thư nào", f"EHLO ok, {login}; nothing sent")

    result = _attempt(t("SMTP: EHLO và AUTH", "SMTP EHLO and AUTH"), "", step)
    if result.ok:
        return result
    if "login refused" in result.detail:
        fix = _login_fix("smtp", config, t)
    elif "[smtp] is missing" in result.detail:
        fix = t("thêm mục [smtp] (cần để gửi bản tổng hợp)", "add an [smtp] section (digests need it)")
    else:
        fix = t("kiểm tra smtp.host, smtp.port và smtp.security (tls: 465, starttls: 587)",
                "check smtp.host, smtp.port and smtp.security (tls: 465, starttls: 587)")
    return _with_fix(result, fix)


def check_store(config: Config, t: Say) -> Check:
    path = Path(config.store.path)

    def step() -> str:
        if not path.exists():
            # Not created here: a store made by root would then belong to root.
            folder = next(p for p in (path, *path.parents) if p.exists())
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ConfigError(f"store.path {path}: {folder} is not writable")
            return t(f"{path} chưa có; sẽ được tạo", f"{path} not there yet; it will be created")
        store = Store.open(path)
        try:
            store.conn.execute("BEGIN IMMEDIATE")  # takes the write lock: proves we may write
            store.conn.execute("ROLLBACK")
            n = store.counts()["messages"]
        finally:
            store.close()
        return t(f"{path} ghi được ({n} thư)", f"{path} writable ({n} messages)")

    return _attempt(t("Kho dữ liệu ghi được", "Store writable"),
                    t("kiểm tra store.path và quyền của thư mục",
                      "check store.path and its folder's permissions"),
                    lambda: _sqlite_errors(step))


def _sqlite_errors(step: Callable[[], str]) -> str:
    import sqlite3

    try:
        return step()
    except sqlite3.Error as e:
        raise ConfigError(f"SQLite: {e}") from None


def check_public_key(config: Config, t: Say) -> Check:
    def step() -> str:
        seal.load_public(config.privacy.public_key_file)
        return config.privacy.public_key_file

    return _attempt(t("Khóa công khai đọc được", "Public key loads"),
                    t("chạy `mailbox-processor keys generate` và đặt privacy.public_key_file",
                      "run `mailbox-processor keys generate` and set privacy.public_key_file"), step)


def check_private_key_absent(config: Config, t: Say) -> Check:
    def step() -> str:
        beside = Path(config.privacy.public_key_file).parent / seal.PRIVATE_NAME
        if beside.exists():
            raise ConfigError(f"{beside} is on this server")
        return t("không nằm cạnh khóa công khai", "not beside the public key")

    return _attempt(t("Khóa bí mật không ở trên máy chủ", "Private key not on the server"),
                    t("chép khóa bí mật sang USB/máy tính ngoại tuyến rồi xóa nó khỏi máy chủ",
                      "copy the private key to offline storage, then delete it from this server"),
                    step)


def check_pepper(config: Config, t: Say) -> Check:
    path = Path(config.privacy.pepper_file)

    def step() -> str:
        if not path.exists():
            if _store_has_mail(config):
                raise ConfigError(f"privacy.pepper_file {path} is missing but the store has mail")
            return t("chưa có; lần chạy đầu sẽ tạo (0600)", "not yet created; the first run makes it (0600)")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"privacy.pepper_file {path} has mode {mode:04o}")
        return f"{path} ({mode:04o})"

    return _attempt(t("Tệp pepper chỉ chủ sở hữu đọc được", "Pepper file mode"),
                    t(f"chmod 600 {path}; nếu mất tệp, khôi phục từ bản sao lưu",
                      f"chmod 600 {path}; if it was lost, restore it from the backup"), step)


def _store_has_mail(config: Config) -> bool:
    if not Path(config.store.path).exists():
        return False
    store = Store.open(config.store.path)
    try:
        return store.counts()["messages"] > 0
    finally:
        store.close()


def check_categories(config: Config, t: Say) -> Check:
    def step() -> str:
        lexicon = classify.load_lexicon(config.classify.categories_file)
        return t(f"{len(lexicon.names)} chủ đề ({lexicon.source})",
                 f"{len(lexicon.names)} categories ({lexicon.source})")

    return _attempt(t("Tệp chủ đề hợp lệ", "Categories file valid"),
                    t("sửa dòng được nêu trong classify.categories_file",
                      "fix the line named above in classify.categories_file"), step)


def check_timezone(config: Config, t: Say) -> Check:
    def step() -> str:
        try:
            ZoneInfo(config.mailbox.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {config.mailbox.timezone!r}") from None
        return config.mailbox.timezone

    return _attempt(t("Múi giờ hợp lệ", "Time zone known"),
                    t("đặt mailbox.timezone, ví dụ \"Asia/Ho_Chi_Minh\"; cài gói tzdata",
                      "set mailbox.timezone, e.g. \"Asia/Ho_Chi_Minh\"; install tzdata"), step)


CHECKS = (check_imap, check_smtp, check_store, check_public_key, check_private_key_absent,
          check_pepper, check_categories, check_timezone)


def run_checks(path: Path, t: Say) -> Iterable[Check]:
    """Each check as it finishes (a slow server should not hide the quick answers)."""
    try:
        config = config_mod.load(path)
    except ConfigError as e:
        yield Check(False, t("Tệp cấu hình hợp lệ", "Config valid"), str(e),
                    t("sửa khóa được nêu; xem config/mailbox-processor.example.toml",
                      "fix the key named; see config/mailbox-processor.example.toml"))
        return
    yield Check(True, t("Tệp cấu hình hợp lệ", "Config valid"), str(path))
    for check in CHECKS:
        yield check(config, t)


# ----- init --------------------------------------------------------------------------


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return str(v)


def config_text(sections: dict[str, dict[str, object]], locations: list[tuple[str, str]]) -> str:
    lines = ["# Hòm thư số — written by `mailbox-processor init`; every key is explained in",
             "# config/mailbox-processor.example.toml. Check it with `mailbox-processor check`.", ""]
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if v is not None]
        lines.append("")
    for slug, name in locations:
        lines += ["[[locations]]", f"slug = {toml_value(slug)}", f"name = {toml_value(name)}", ""]
    return "\n".join(lines)


def ensure_writable(files: list[Path]) -> None:
    """Make each file's folder, and fail before anything is written if one is not ours to write."""
    for file in files:
        file.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(file.parent, os.W_OK | os.X_OK):
            raise ConfigError(f"init: cannot write in {file.parent} (run init as root?)")


def write_secret(path: Path, value: str) -> None:
    """A password file readable by its owner only (root; systemd passes it on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)


def write_config(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; use --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def make_keys(private_dir: Path, public_file: Path, passphrase: bytes) -> Path:
    """A new archive pair: the private key stays in `private_dir`, the public one moves to
    `public_file`. Returns the private key's path."""
    public, private = seal.generate(private_dir, passphrase)
    if public.resolve() != public_file.resolve():
        if public_file.exists():
            public.unlink()
            private.unlink()
            raise ConfigError(f"{public_file} already exists; refusing to overwrite an archive key")
        public_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(public, public_file)
        public_file.chmod(0o644)
    return private


# ----- status, reply, export -----------------------------------------------------------


def reply_subject(ref: str) -> str:
    # Not the citizen's subject: that is their own words (a name, a house number) and the
    # reply is kept in the ward's Sent folder and the provider's logs. The code is what
    # the acknowledgement showed them, so they can still match the two.
    return f"Re: Góp ý mã {ref}"


def reply_text(text: str, ref: str, config: Config) -> str:
    body = unicodedata.normalize("NFC", text).strip()
    return f"{body}\n\n--\n{config.mailbox.name}\nMã góp ý: {ref}\n"


def send_reply(config: Config, store: Store, ref: str, private_key: Path, passphrase: bytes,
               text: str, by_user: str) -> None:
    """Open the seal, answer the citizen under their original, record it. Prints nothing."""
    ref = ref.upper()
    if not unicodedata.normalize("NFC", text).strip():
        raise ConfigError("--text-file is empty")
    blob = store.sealed_blob(ref)
    if blob is None:
        raise ConfigError(f"{ref}: no sealed original in the store (unknown or purged)")
    key = seal.load_private(private_key, passphrase)
    raw, identity = seal.open_seal(blob, ref, key)
    address = identity.reply_address()
    if not address:
        store.audit(by_user, "reply-no-address", ref)
        raise ConfigError(f"{ref}: the original has no address to reply to")
    try:
        msg = ack.outgoing(config, to=address, subject=reply_subject(ref),
                           text=reply_text(text, ref, config), kind="reply", ref=ref,
                           in_reply_to=_message_id(raw))
        mail.send(config, msg, to=[address])
    except MailboxError:
        store.audit(by_user, "reply-not-sent", ref)  # the seal was opened all the same
        raise
    except Exception as e:  # e.g. an address smtplib cannot encode: one line, no address in it
        store.audit(by_user, "reply-not-sent", ref)
        raise TransientError(f"{ref}: reply not sent ({type(e).__name__})") from None
    store.record_reply(ref, str(msg["Message-ID"]), by_user)


def _message_id(raw: bytes) -> str | None:
    try:
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        value = str(headers.get("Message-ID") or "")
    except Exception:  # a damaged original still gets its reply, just unthreaded
        return None
    match = ack.MESSAGE_ID_RE.search(value)
    return match.group(0) if match else None


EXPORT_COLUMNS = ("ref", "date", "location", "category", "urgency", "status", "flags", "text")
# A spreadsheet runs a cell that starts with one of these as a formula: citizen text is untrusted.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_csv(store: Store, since: dt.date | None, excel: bool) -> str:
    """The readable columns of every submission since `since` (quarantined mail has none)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in store.rows_since(since):
        if row.quarantined or row.text is None:
            continue
        values = [row.ref, row.date, row.location or "", row.category or "", row.urgency or "",
                  row.status or "", ",".join(row.flags), row.text]
        # Always inert: a report to higher levels is opened in a spreadsheet, whatever it is.
        writer.writerow([_cell(v) for v in values])
    text = out.getvalue()
    return "\ufeff" + text if excel else text  # Excel reads UTF-8 only after a BOM


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value
