"""init, check, reply, status, export and purge, against a real Dovecot and aiosmtpd."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import sqlite3
import stat
import tomllib
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE, run_cli
from tests.dovecot import ImapAccount
from tests.smtpd import OAUTH2_TOKEN, SmtpServer

CITIZEN = "tran.thi.binh@gmail.example"
CITIZEN_HOME = "binh.nha@yahoo.example"


def citizen_mail(n: int = 0, sender: str = CITIZEN, extra: dict[str, str] | None = None,
                 body: str | None = None, subject: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Trần Thị Bình <{sender}>"
    msg["To"] = "hopthu+tdp1@phuong.example.vn"
    msg["Subject"] = subject if subject is not None else f"Góp ý số {n}"
    msg["Date"] = "Tue, 01 Dec 2026 08:15:00 +0700"
    msg["Message-ID"] = f"<{n}.{random.getrandbits(48):x}@mail.gmail.example>"
    for name, value in (extra or {}).items():
        msg[name] = value
    msg.set_content(body or f"Kính gửi phường, rác ở chợ chưa được dọn, góp ý số {n}.")
    return msg.as_bytes()


def db(config: Path) -> sqlite3.Connection:
    return sqlite3.connect(tomllib.loads(config.read_text(encoding="utf-8"))["store"]["path"])


def stored_long_ago_and_digested(config: Path) -> None:
    """As if every message had been stored when it was received and was in a sent digest."""
    with db(config) as conn:
        conn.execute("UPDATE message SET stored_on = received_on")
        digest = conn.execute("INSERT INTO digest (message_id, created_at, sent_at, status) "
                              "VALUES ('<d@x>', '2025-01-01', '2025-01-01', 'sent')").lastrowid
        conn.execute("UPDATE submission SET digest_id=?", (digest,))
        conn.execute("UPDATE message SET digest_id=? WHERE quarantined=1", (digest,))


def listed(config: Path, *args: str) -> list[dict]:
    out = run_cli(config, "list", "--format", "json", *args, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def configured(make_config, imap_account: ImapAccount, smtp_plain: SmtpServer):
    """A config for this test's IMAP account and a plain SMTP relay; acknowledgements off
    unless asked, so the SMTP server sees only what the test sends."""
    def make(**extra: dict) -> Path:
        extra.setdefault("acknowledge", {"enabled": False})
        return make_config(imap=imap_account.imap_config(**extra.pop("imap", {})),
                           smtp=smtp_plain.smtp_config("none"), **extra)
    return make


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr + result.stdout


# ----- init and check ------------------------------------------------------------------


def test_init_non_interactive_writes_everything_then_check_passes(
    tmp_path: Path, imap_account: ImapAccount, smtp_starttls: SmtpServer,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    etc, state, offline = tmp_path / "etc", tmp_path / "var", tmp_path / "offline"
    config = etc / "config.toml"
    imap = imap_account.imap_config()
    smtp = smtp_starttls.smtp_config("starttls", password_file=tmp_path / "smtp-pw")
    _public, _private, passfile = archive_keys

    result = run_cli(
        config, "init", "--non-interactive",
        "--address", "hopthu@phuong.example.vn", "--name", "Hòm thư số – phường Ngọc Sơn",
        "--imap-host", "127.0.0.1", "--imap-port", str(imap["port"]), "--imap-security", "none",
        "--imap-username", str(imap["username"]), "--imap-password-file", str(imap["password_file"]),
        "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp["port"]), "--smtp-security", "starttls",
        "--smtp-username", str(smtp["username"]), "--smtp-password-file", str(smtp["password_file"]),
        "--smtp-ca-file", str(smtp["ca_file"]),
        "--digest-to", "chutich@phuong.example.vn, phochutich@phuong.example.vn",
        "--location", "tdp1=Tổ dân phố 1", "--location", "tdp2=Tổ dân phố 2;nvh=Nhà văn hóa",
        "--store-path", str(state / "store.sqlite3"), "--pepper-file", str(state / "pepper"),
        "--private-key-dir", str(offline), "--passphrase-file", str(passfile),
        env={"LANG": "C.UTF-8", "LC_ALL": ""},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ IMAP login and folders" in result.stdout
    assert "✓ SMTP EHLO and AUTH" in result.stdout
    assert "DELETE it from this server" in result.stdout and "passphrase apart" in result.stdout
    written = tomllib.loads(config.read_text(encoding="utf-8"))
    assert written["mailbox"]["address"] == "hopthu@phuong.example.vn"
    assert written["digest"]["to"] == ["chutich@phuong.example.vn", "phochutich@phuong.example.vn"]
    assert [loc["slug"] for loc in written["locations"]] == ["tdp1", "tdp2", "nvh"]
    assert written["privacy"]["public_key_file"] == str(etc / "archive-public.pem")
    assert (etc / "archive-public.pem").exists()
    assert (offline / "archive-private.pem").exists()
    assert not (etc / "archive-private.pem").exists()
    assert stat.S_IMODE((state / "pepper").stat().st_mode) == 0o600
    assert smtp_starttls.envelopes == []  # a connection test sends nothing

    check = run_cli(config, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert not [line for line in lines if line.startswith("✗")]
    for what in ("Config valid", "IMAP login and folders", "SMTP EHLO and AUTH", "Store writable",
                 "Public key loads", "Pepper file mode", "Categories file valid", "Time zone known"):
        assert any(line.startswith(f"✓ {what}") for line in lines), check.stdout

    again = run_cli(config, "init", "--non-interactive", "--address", "x@y.vn", "--no-test")
    assert again.returncode != 0 and "already exists" in again.stderr
    no_traceback(again)


def test_init_with_an_oauth2_token_command_for_smtp_asks_no_password_and_check_says_what_to_renew(
    tmp_path: Path, imap_account: ImapAccount, smtp_oauth2: SmtpServer,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    config = tmp_path / "etc" / "config.toml"
    imap = imap_account.imap_config()
    token = tmp_path / "token"
    token.write_text(OAUTH2_TOKEN, encoding="utf-8")
    result = run_cli(
        config, "init", "--non-interactive", "--address", str(smtp_oauth2.username),
        "--imap-host", "127.0.0.1", "--imap-port", str(imap["port"]), "--imap-security", "none",
        "--imap-username", str(imap["username"]), "--imap-password-file", str(imap["password_file"]),
        "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_oauth2.port),
        "--smtp-security", "starttls", "--smtp-ca-file", str(smtp_oauth2.ca_file),
        "--smtp-oauth2-token-command", f"cat {token}",
        "--digest-to", "chutich@phuong.example.vn", "--location", "tdp1=Tổ dân phố 1",
        "--store-path", str(tmp_path / "var" / "store.sqlite3"),
        "--pepper-file", str(tmp_path / "var" / "pepper"),
        "--private-key-dir", str(tmp_path / "offline"), "--passphrase-file", str(archive_keys[2]),
        env={"LANG": "C.UTF-8", "LC_ALL": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ SMTP EHLO and AUTH" in result.stdout
    smtp = tomllib.loads(config.read_text(encoding="utf-8"))["smtp"]
    assert smtp["auth"] == "xoauth2" and "password_file" not in smtp

    token.write_text("ya29.expired", encoding="utf-8")
    check = run_cli(config, "check", env={"LANG": "C.UTF-8", "LC_ALL": ""})
    assert check.returncode == 1
    [failed] = [line for line in check.stdout.splitlines() if line.startswith("✗")]
    assert "SMTP" in failed and "login refused" in failed
    assert "renew the OAuth token (smtp.oauth2_token_file or smtp.oauth2_token_command)" \
        in check.stdout
    no_traceback(check)


def test_init_interactive_asks_in_vietnamese_and_needs_no_flags(
    tmp_path: Path, imap_account: ImapAccount, smtp_plain: SmtpServer
) -> None:
    config = tmp_path / "etc" / "config.toml"
    imap = imap_account.imap_config()
    state = tmp_path / "var"
    answers = [
        "hopthu@phuong.example.vn", "",  # address, name (default)
        "127.0.0.1", "none", str(imap["port"]), str(imap["username"]),  # IMAP
        "127.0.0.1", "none", str(smtp_plain.port), "-",  # SMTP relay, no login
        "chutich@phuong.example.vn", "",  # digest, locations (default)
        str(state / "store.sqlite3"), str(state / "pepper"), "",  # store, pepper, public key
        "mật-khẩu-imap",  # the IMAP password, written to etc/imap-password
        str(tmp_path / "offline"), PASSPHRASE, PASSPHRASE,  # private key folder, passphrase
    ]

    result = run_cli(config, "init", input="\n".join(answers) + "\n",
                     env={"LANG": "vi_VN.UTF-8", "LC_ALL": ""})

    assert "Địa chỉ hòm thư" in result.stderr and "Máy chủ IMAP" in result.stderr
    assert "Khóa BÍ MẬT" in result.stdout
    # The password typed is not the Dovecot one: init says so with a ✗ and exits 1.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✗ IMAP: đăng nhập và thư mục" in result.stdout
    assert "✓ SMTP: EHLO và AUTH" in result.stdout
    pw = tmp_path / "etc" / "imap-password"
    assert pw.read_text(encoding="utf-8").strip() == "mật-khẩu-imap"
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600
    assert "mật-khẩu-imap" not in result.stdout + result.stderr
    written = tomllib.loads(config.read_text(encoding="utf-8"))
    assert "username" not in written["smtp"]
    assert written["locations"] == [{"slug": "tdp1", "name": "Tổ dân phố 1"}]


def test_check_reports_wrong_passwords_with_what_to_do(
    make_config, tmp_path: Path, imap_account: ImapAccount, smtp_starttls: SmtpServer
) -> None:
    imap = imap_account.imap_config()
    bad = tmp_path / "wrong-imap"
    bad.write_text("sai mật khẩu", encoding="utf-8")
    smtp = smtp_starttls.smtp_config("starttls", password_file=tmp_path / "smtp-pw")
    (tmp_path / "smtp-pw").write_text("sai", encoding="utf-8")
    config = make_config(imap={**imap, "password_file": str(bad)}, smtp=smtp)

    result = run_cli(config, "check")

    assert result.returncode == 1
    no_traceback(result)
    out = result.stdout
    assert "✗ IMAP login and folders" in out and "login refused" in out
    assert "✗ SMTP EHLO and AUTH" in out
    assert "→ check imap.username and the password" in out
    assert "→ check smtp.username and the password" in out
    assert "✓ Config valid" in out and "✓ Public key loads" in out


def test_check_reports_a_missing_folder_in_vietnamese(
    make_config, imap_account: ImapAccount, smtp_plain: SmtpServer
) -> None:
    config = make_config(imap=imap_account.imap_config(folder="Hộp-thư-không-có"),
                         smtp=smtp_plain.smtp_config("none"))

    result = run_cli(config, "check", env={"LANG": "vi_VN.UTF-8", "LC_ALL": ""})

    assert result.returncode == 1
    no_traceback(result)
    assert "✗ IMAP: đăng nhập và thư mục" in result.stdout
    assert "does not exist" in result.stdout and "→ sửa imap.folder" in result.stdout
    assert "✓ SMTP: EHLO và AUTH" in result.stdout


def test_check_on_a_broken_config_and_an_open_pepper(tmp_path: Path, make_config) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[mailbox]\naddress = 'not an address'\n", encoding="utf-8")
    result = run_cli(broken, "check")
    assert result.returncode == 1
    no_traceback(result)
    assert result.stdout.startswith("✗ Config valid")

    config = make_config()
    pepper = tmp_path / "state" / "pepper"
    pepper.parent.mkdir(parents=True, exist_ok=True)
    pepper.write_bytes(b"x" * 32)
    pepper.chmod(0o644)
    result = run_cli(config, "check")
    assert result.returncode == 1
    no_traceback(result)
    assert "✗ Pepper file mode" in result.stdout and "chmod 600" in result.stdout
    assert "✗ IMAP login and folders" in result.stdout  # port 1: nothing listens


# ----- reply and status ------------------------------------------------------------------


def test_reply_reaches_the_citizen_without_the_address_in_output_or_logs(
    configured, imap_account: ImapAccount, smtp_plain: SmtpServer,
    archive_keys: tuple[Path, Path, Path], tmp_path: Path,
) -> None:
    config = configured()
    original = citizen_mail(1, extra={"Reply-To": f"Bình <{CITIZEN_HOME}>"})
    imap_account.server.append(imap_account.user, [original])
    assert run_cli(config, "fetch", "--once").returncode == 0
    [row] = listed(config)
    ref = row["ref"]
    _public, private, passfile = archive_keys
    answer = tmp_path / "answer.txt"
    answer.write_text("Phường đã cho dọn rác ở chợ sáng nay. Cảm ơn bà đã báo.\n", encoding="utf-8")

    result = run_cli(config, "-vv", "reply", ref.lower(), "--private-key", str(private),
                     "--text-file", str(answer), "--passphrase-file", str(passfile))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{ref}: reply sent; status answered"
    for secret in (CITIZEN, CITIZEN_HOME, "tran.thi", "binh.nha", "Trần Thị Bình"):
        assert secret not in result.stdout + result.stderr
    [envelope] = smtp_plain.envelopes
    assert envelope.rcpt_tos == (CITIZEN_HOME,)  # Reply-To wins over From
    msg = envelope.message()
    original_id = original.split(b"Message-ID: ")[1].split(b"\n")[0].strip().decode()
    assert msg["In-Reply-To"] == original_id
    assert msg["Subject"] == f"Re: Góp ý mã {ref}"
    assert "hopthu@phuong.example.vn" in msg["From"]
    assert "Auto-Submitted" not in msg  # a person's answer, not an automatic one
    assert "dọn rác ở chợ sáng nay" in msg.get_content()

    assert listed(config, "--status", "answered")[0]["ref"] == ref
    with db(config) as conn:
        assert conn.execute("SELECT action, ref FROM audit").fetchall() == [("reply", ref)]
        assert conn.execute("SELECT count(*) FROM reply WHERE ref=?", (ref,)).fetchone()[0] == 1
        dump = "\n".join(conn.iterdump())
    assert CITIZEN_HOME not in dump and CITIZEN not in dump


def test_reply_with_a_wrong_passphrase_sends_nothing(
    configured, imap_account: ImapAccount, smtp_plain: SmtpServer,
    archive_keys: tuple[Path, Path, Path], tmp_path: Path,
) -> None:
    config = configured()
    imap_account.server.append(imap_account.user, [citizen_mail(2)])
    assert run_cli(config, "fetch", "--once").returncode == 0
    ref = listed(config)[0]["ref"]
    wrong = tmp_path / "wrong"
    wrong.write_text("không phải mật khẩu", encoding="utf-8")
    answer = tmp_path / "answer.txt"
    answer.write_text("Trả lời.", encoding="utf-8")

    result = run_cli(config, "reply", ref, "--private-key", str(archive_keys[1]),
                     "--text-file", str(answer), "--passphrase-file", str(wrong))

    assert result.returncode == 2 and "wrong passphrase" in result.stderr
    no_traceback(result)
    assert smtp_plain.envelopes == []
    assert listed(config)[0]["status"] == "new"


def test_status_changes_are_recorded_and_listed(configured, imap_account: ImapAccount) -> None:
    config = configured()
    imap_account.server.append(imap_account.user, [citizen_mail(i) for i in range(3)])
    assert run_cli(config, "fetch", "--once").returncode == 0
    a, b, _c = (r["ref"] for r in listed(config))

    assert run_cli(config, "status", a, "forwarded", "--note", "chuyển tổ dân phố").returncode == 0
    assert run_cli(config, "status", b.lower(), "closed").returncode == 0
    assert run_cli(config, "status", a, "answered").returncode == 0

    assert [r["ref"] for r in listed(config, "--status", "answered")] == [a]
    assert [r["ref"] for r in listed(config, "--status", "closed")] == [b]
    assert len(listed(config, "--status", "new")) == 1
    with db(config) as conn:
        history = conn.execute("SELECT ref, status, note FROM status_change ORDER BY id").fetchall()
    assert history == [(a, "forwarded", "chuyển tổ dân phố"), (b, "closed", None), (a, "answered", None)]

    bad = run_cli(config, "status", a, "deleted")
    assert bad.returncode == 2
    unknown = run_cli(config, "status", "HT-ZZZZZ", "closed")
    assert unknown.returncode == 2 and "HT-ZZZZZ" in unknown.stderr
    no_traceback(unknown)


# ----- export ---------------------------------------------------------------------------


def test_export_has_the_anonymised_columns_only(configured, imap_account: ImapAccount) -> None:
    config = configured(imap={"max_message_bytes": 4000})
    big = citizen_mail(9, body="Ảnh " * 2000)  # over the limit: quarantined, has no readable copy
    imap_account.server.append(imap_account.user, [
        citizen_mail(1), citizen_mail(2, subject="=HYPERLINK(\"http://x.example\")"), big])
    assert run_cli(config, "fetch", "--once").returncode == 0
    today = dt.date.today()

    result = run_cli(config, "export", "--since", (today - dt.timedelta(days=1)).isoformat(),
                     "--format", "csv")

    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["ref", "date", "location", "category", "urgency", "status", "flags", "text"]
    assert len(rows) == 3
    refs = {r["ref"] for r in listed(config) if not r["quarantined"]}
    assert {r[0] for r in rows[1:]} == refs
    assert all(r[2] == "tdp1" and r[5] == "new" for r in rows[1:])
    for secret in (CITIZEN, "Trần", "gmail", "Message-ID"):
        assert secret not in result.stdout
    assert any(r[7].startswith("'=HYPERLINK") for r in rows[1:])  # inert in a spreadsheet
    assert not any(r[7].startswith("=") for r in rows[1:])

    later = run_cli(config, "export", "--since", (today + dt.timedelta(days=1)).isoformat())
    assert later.stdout.splitlines() == ["ref,date,location,category,urgency,status,flags,text"]

    excel = run_cli(config, "export", "--excel", "--out", str(config.parent / "out.csv"))
    assert excel.returncode == 0
    data = (config.parent / "out.csv").read_text(encoding="utf-8")
    assert data.startswith("\ufeffref,")
    texts = [r[7] for r in csv.reader(io.StringIO(data.removeprefix("\ufeff")))]
    assert any(t.startswith("'=HYPERLINK") for t in texts)  # inert in a spreadsheet
    assert not any(t.startswith("=") for t in texts)


# ----- retention ---------------------------------------------------------------------------


def test_purge_removes_old_seals_and_server_copies_and_nothing_else(
    configured, imap_account: ImapAccount, archive_keys: tuple[Path, Path, Path]
) -> None:
    server, user = imap_account.server, imap_account.user
    config = configured(imap={"max_message_bytes": 4000})
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    server.append(user, [citizen_mail(1), citizen_mail(2)], when=long_ago)
    server.append(user, [citizen_mail(3, body="Ảnh " * 2000)], when=long_ago)  # quarantined
    server.append(user, [citizen_mail(4), citizen_mail(5)])
    assert run_cli(config, "fetch", "--once").returncode == 0
    rows = listed(config)
    old = [r["ref"] for r in rows[:3]]
    new = [r["ref"] for r in rows[3:]]
    assert [r["quarantined"] for r in rows] == [False, False, True, False, False]
    # Mail that is not ours: old, but never fetched, or put in Processed by someone else.
    server.append(user, [citizen_mail(6)], when=long_ago)
    server.append(user, [citizen_mail(7)], folder="Processed", when=long_ago)
    assert (server.count(user, "Processed"), server.count(user, "Quarantine")) == (5, 1)
    stored_long_ago_and_digested(config)

    result = run_cli(config, "purge", "--older-than", "365")

    assert result.returncode == 0, result.stderr
    assert "3 sealed, 3 deleted on the IMAP server" in result.stdout
    assert server.count(user, "Processed") == 3  # the two new ones and the stranger
    assert server.count(user, "Quarantine") == 0
    assert server.count(user, "INBOX") == 1
    with db(config) as conn:
        sealed = {r[0] for r in conn.execute("SELECT ref FROM sealed")}
    assert sealed == set(new)
    assert [r["ref"] for r in listed(config)] == old + new  # readable copies stay
    shown = run_cli(config, "show", old[0], "--format", "json", check=True)
    assert "rác ở chợ" in json.loads(shown.stdout)["text"]
    _public, private, passfile = archive_keys
    reveal = run_cli(config, "reveal", old[0], "--private-key", str(private),
                     "--passphrase-file", str(passfile))
    assert reveal.returncode == 2 and "purged" in reveal.stderr
    assert run_cli(config, "reveal", new[0], "--private-key", str(private),
                   "--passphrase-file", str(passfile)).returncode == 0

    again = run_cli(config, "purge", "--older-than", "365")
    assert "0 sealed, 0 deleted" in again.stdout

    everything = run_cli(config, "purge", "--older-than", "365", "--all")
    assert everything.returncode == 0, everything.stderr
    assert [r["ref"] for r in listed(config)] == new
    assert server.count(user, "Processed") == 3


def test_purge_defaults_to_the_configured_retention(configured, imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    config = configured(retention={"days": 30})
    server.append(user, [citizen_mail(1)], when=dt.datetime.now(dt.UTC) - dt.timedelta(days=40))
    server.append(user, [citizen_mail(2)], when=dt.datetime.now(dt.UTC) - dt.timedelta(days=20))
    assert run_cli(config, "fetch", "--once").returncode == 0
    stored_long_ago_and_digested(config)

    result = run_cli(config, "purge")

    assert result.returncode == 0, result.stderr
    assert "1 sealed, 1 deleted" in result.stdout
    assert server.count(user, "Processed") == 1


def test_purge_keeps_old_mail_that_was_stored_recently_or_never_digested(
    configured, imap_account: ImapAccount
) -> None:
    """Imported mail keeps an old INTERNALDATE; and leaders must see an item before it goes."""
    server, user = imap_account.server, imap_account.user
    config = configured()
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    server.append(user, [citizen_mail(1)], when=long_ago)
    assert run_cli(config, "fetch", "--once").returncode == 0

    imported = run_cli(config, "purge", "--older-than", "365", "--all")
    assert "0 sealed, 0 deleted" in imported.stdout
    with db(config) as conn:  # stored long ago, but in no digest yet
        conn.execute("UPDATE message SET stored_on = received_on")
    undigested = run_cli(config, "purge", "--older-than", "365", "--all")
    assert "0 sealed, 0 deleted" in undigested.stdout

    assert len(listed(config)) == 1
    assert server.count(user, "Processed") == 1
