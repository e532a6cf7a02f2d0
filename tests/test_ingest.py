"""Promise 1, against a real Dovecot: every message stored exactly once, whatever happens."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import http.server
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE, run_cli
from tests.dovecot import Dovecot, ImapAccount

# These tests are about intake; acknowledgements have their own (tests/test_ack.py).
NO_ACK = {"enabled": False}
TOPICS = [
    "Đèn đường ở ngõ 12 bị hỏng đã hai tuần, buổi tối rất tối.",
    "Rác thải đổ trộm ở bãi đất trống cạnh chợ, bốc mùi hôi thối.",
    "Đề nghị phường xem xét lại việc thu phí vệ sinh năm nay.",
    "Nước sinh hoạt bị đục và có mùi lạ từ tuần trước.",
]


def citizen_mail(n: int, to: str = "hopthu+tdp1@phuong.example.vn", body: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Người dân {n} <nguoidan{n}@gmail.example>"
    msg["To"] = to
    msg["Subject"] = f"Góp ý số {n}"
    msg["Date"] = "Tue, 01 Dec 2026 08:15:00 +0700"
    msg["Message-ID"] = f"<{n}.{random.random()}@mail.gmail.example>"
    msg.set_content(body or f"Kính gửi phường, {TOPICS[n % len(TOPICS)]} (thư {n})")
    return msg.as_bytes()


def stored(config: Path) -> list[dict]:
    out = run_cli(config, "list", "--format", "json", check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def store_db(config: Path) -> sqlite3.Connection:
    import tomllib

    path = tomllib.loads(config.read_text())["store"]["path"]
    return sqlite3.connect(path)


@pytest.fixture
def account_config(make_config, imap_account: ImapAccount):
    def make(**imap: object) -> Path:
        return make_config(imap=imap_account.imap_config(**imap), acknowledge=NO_ACK)
    return make


def test_fetch_once_stores_each_message_and_moves_it_to_processed(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config()
    server, user = imap_account.server, imap_account.user
    server.append(user, [citizen_mail(i) for i in range(5)])

    result = run_cli(config, "fetch", "--once")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stored 5, duplicates 0, quarantined 0"
    rows = stored(config)
    assert len(rows) == 5
    assert {r["ref"] for r in rows} == {r["ref"] for r in rows if r["ref"].startswith("HT-")}
    assert len({r["ref"] for r in rows}) == 5
    assert all(not r["quarantined"] for r in rows)
    assert server.count(user, "INBOX") == 0
    assert server.count(user, "Processed") == 5
    assert server.count(user, "Quarantine") == 0


def test_fetching_does_not_mark_mail_read_and_a_second_run_stores_nothing(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config()
    server, user = imap_account.server, imap_account.user
    server.append(user, [citizen_mail(i) for i in range(3)])
    run_cli(config, "fetch", "--once", check=True)

    again = run_cli(config, "fetch", "--once", check=True)

    assert again.stdout.strip() == "stored 0, duplicates 0, quarantined 0"
    assert len(stored(config)) == 3
    with server.client(user) as c:
        c.select_folder("Processed", readonly=True)
        assert c.search(["SEEN"]) == []


def test_delete_after_processing_leaves_nothing_on_the_server(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config(after_processing="delete")
    server, user = imap_account.server, imap_account.user
    server.append(user, [citizen_mail(i) for i in range(2)])

    run_cli(config, "fetch", "--once", check=True)

    assert len(stored(config)) == 2
    assert server.count(user, "INBOX") == 0
    assert server.count(user, "Processed") == 0


def test_message_over_the_size_limit_is_quarantined_without_downloading(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config(max_message_bytes=20_000)
    server, user = imap_account.server, imap_account.user
    big = citizen_mail(1, body="Ảnh hiện trường. " + "x" * 60_000)
    server.append(user, [big, citizen_mail(2)])

    result = run_cli(config, "fetch", "--once", check=True)

    assert result.stdout.strip() == "stored 1, duplicates 0, quarantined 1"
    rows = {r["quarantined"]: r for r in stored(config)}
    assert rows[True]["error"] == "too-large"
    assert server.count(user, "Quarantine") == 1
    assert server.count(user, "Processed") == 1
    with store_db(config) as db:
        size, = db.execute("SELECT size FROM message WHERE quarantined=1").fetchone()
    assert size >= 60_000


def test_uidvalidity_change_falls_back_to_the_content_hash(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config()
    server, user = imap_account.server, imap_account.user
    mails = [citizen_mail(i) for i in range(4)]
    server.append(user, mails)
    run_cli(config, "fetch", "--once", check=True)
    # The server is restored from a backup: the same mail is back, under a new UIDVALIDITY.
    server.append(user, [*mails, citizen_mail(99)])
    server.set_uidvalidity(user)

    result = run_cli(config, "fetch", "--once", check=True)

    assert result.stdout.strip() == "stored 1, duplicates 4, quarantined 0"
    assert len(stored(config)) == 5
    assert server.count(user, "INBOX") == 0


def test_same_message_id_with_different_content_is_not_a_duplicate(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config()
    a, b = citizen_mail(1), citizen_mail(2)
    mid = b"<same@mail.example>"
    a = a.replace(a[a.index(b"Message-ID: ") + 12:].split(b"\n")[0], mid)
    b = b.replace(b[b.index(b"Message-ID: ") + 12:].split(b"\n")[0], mid)
    imap_account.server.append(imap_account.user, [a, b])

    result = run_cli(config, "fetch", "--once", check=True)

    assert result.stdout.strip() == "stored 2, duplicates 0, quarantined 0"


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config(batch_size=20)
    server, user = imap_account.server, imap_account.user
    server.append(user, [citizen_mail(i) for i in range(300)])
    rng = random.Random(20261201)
    cmd = [sys.executable, "-m", "mailbox_processor", "--config", str(config), "fetch", "--once"]

    kills = 0
    for _ in range(5):
        # A random moment inside the drain: after a random number of further commits,
        # plus a random fraction of one message's work (mid-transaction, mid-MOVE...).
        target = count_rows(config) + rng.randint(1, 50)
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda t=target, p=p: count_rows(config) >= t or p.poll() is not None, 60)
        time.sleep(rng.uniform(0, 0.02))
        if p.poll() is None:
            p.kill()
            kills += 1
        p.wait()
    result = run_cli(config, "fetch", "--once", check=True)

    assert kills == 5, "a drain finished before its kill"
    rows = stored(config)
    assert len(rows) == 300
    assert len({r["ref"] for r in rows}) == 300
    with store_db(config) as db:
        assert db.execute("SELECT count(DISTINCT sha256) FROM message").fetchone()[0] == 300
        assert db.execute("SELECT count(*) FROM sealed").fetchone()[0] == 300
    assert server.count(user, "INBOX") == 0
    assert "duplicates" in result.stdout


def test_server_stopping_mid_run_exits_1_then_the_drain_completes(
    make_config, private_dovecot: Dovecot
) -> None:
    account = ImapAccount(private_dovecot, "stopper")
    config = make_config(imap=account.imap_config(batch_size=5), acknowledge=NO_ACK)
    private_dovecot.append("stopper", [citizen_mail(i) for i in range(1000)])
    cmd = [sys.executable, "-m", "mailbox_processor", "--config", str(config), "fetch", "--once"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: count_rows(config) >= 20, 60)
    private_dovecot.stop()
    out, err = p.communicate(timeout=120)

    assert p.returncode == 1, (out, err)
    assert err.startswith("error: IMAP"), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

    private_dovecot.start()
    run_cli(config, "fetch", "--once", check=True)
    rows = stored(config)
    assert len(rows) == 1000
    assert len({r["ref"] for r in rows}) == 1000
    assert private_dovecot.count("stopper", "INBOX") == 0


def test_connection_refused_is_one_line_and_exit_1(make_config) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = make_config(imap={"port": port})

    result = run_cli(config, "fetch", "--once")

    assert result.returncode == 1
    assert result.stderr.startswith("error: IMAP: connecting to 127.0.0.1:")
    assert "Traceback" not in result.stderr


def test_wrong_password_is_reported_as_a_login_failure(
    account_config, imap_account: ImapAccount, tmp_path: Path
) -> None:
    bad = tmp_path / "bad-password"
    bad.write_text("không đúng")
    config = account_config(password_file=str(bad))

    result = run_cli(config, "fetch", "--once")

    assert result.returncode == 1
    assert "login refused" in result.stderr


def test_every_corpus_file_is_stored_or_quarantined(
    account_config, imap_account: ImapAccount, shared_dir: Path
) -> None:
    config = account_config()
    server, user = imap_account.server, imap_account.user
    files = sorted(p for p in (shared_dir / "corpora").rglob("*")
                   if p.is_file() and "_licenses" not in p.parts and p.name != "README.md")
    accepted = 0
    with server.client(user) as c:
        for f in files:
            try:
                c.append("INBOX", f.read_bytes())
                accepted += 1
            except Exception:
                pass
    assert accepted > 0.9 * len(files)

    result = run_cli(config, "fetch", "--once", timeout=600)

    assert result.returncode == 0, result.stderr
    rows = stored(config)
    counts = result.stdout.strip()
    stored_n, dup_n, q_n = (int(part.split()[-1]) for part in counts.split(", "))
    assert stored_n + dup_n + q_n == accepted
    assert stored_n + q_n == len(rows)
    assert server.count(user, "INBOX") == 0
    # Duplicates are byte-identical messages only: one row per distinct message.
    moved = server.messages(user, "Processed") + server.messages(user, "Quarantine")
    assert len(moved) == accepted
    assert len({hashlib.sha256(m).digest() for m in moved}) == len(rows)


def test_tls_refuses_a_self_signed_certificate_unless_its_ca_is_configured(
    account_config, imap_account: ImapAccount
) -> None:
    server = imap_account.server
    imap_account.server.append(imap_account.user, [citizen_mail(1)])
    untrusted = account_config(security="tls", port=server.tls_port)

    refused = run_cli(untrusted, "fetch", "--once")

    assert refused.returncode == 1
    assert "certificate not trusted" in refused.stderr
    trusted = account_config(security="tls", port=server.tls_port, ca_file=str(server.cert))
    assert run_cli(trusted, "fetch", "--once", check=True).stdout.startswith("stored 1")


def test_starttls_verifies_the_certificate_too(account_config, imap_account: ImapAccount) -> None:
    server = imap_account.server
    refused = run_cli(account_config(security="starttls"), "fetch", "--once")
    assert refused.returncode == 1 and "certificate not trusted" in refused.stderr

    server.append(imap_account.user, [citizen_mail(1)])
    ok = run_cli(account_config(security="starttls", ca_file=str(server.cert)), "fetch", "--once")
    assert ok.returncode == 0 and ok.stdout.startswith("stored 1")


def test_plain_text_imap_to_a_remote_host_is_refused(make_config) -> None:
    config = make_config(imap={"host": "imap.example.vn", "security": "none"})

    result = run_cli(config, "fetch", "--once")

    assert result.returncode == 2
    assert str(config) in result.stderr and "imap.security" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_instance_on_the_same_store_is_refused(
    account_config, imap_account: ImapAccount
) -> None:
    import fcntl
    import tomllib

    config = account_config()
    store_path = tomllib.loads(config.read_text())["store"]["path"]
    Path(store_path).parent.mkdir(parents=True, exist_ok=True)
    with open(store_path + ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run_cli(config, "fetch", "--once")
    assert result.returncode == 1
    assert "already doing intake on this store" in result.stderr


# ----- the daemon ---------------------------------------------------------------------


def start_daemon(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mailbox_processor", "--config", str(config), "-v", "run"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def wait_for(predicate, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def count_rows(config: Path) -> int:
    try:
        with store_db(config) as db:
            return db.execute("SELECT count(*) FROM message").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_idle_delivers_a_new_message_in_under_5_seconds(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config(poll_seconds=600)
    server, user = imap_account.server, imap_account.user
    server.append(user, [citizen_mail(1)])
    daemon = start_daemon(config)
    try:
        wait_for(lambda: count_rows(config) == 1, 30)
        time.sleep(1.0)  # let it enter IDLE
        server.append(user, [citizen_mail(2)])
        elapsed = wait_for(lambda: count_rows(config) == 2, 5)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=15)
    assert elapsed < 5
    assert server.count(user, "INBOX") == 0


def test_sigterm_during_a_drain_commits_and_exits_0_within_10_seconds(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config(batch_size=10)
    server, user = imap_account.server, imap_account.user
    server.append(user, [citizen_mail(i) for i in range(200)])
    daemon = start_daemon(config)
    wait_for(lambda: count_rows(config) >= 5, 30)

    daemon.send_signal(signal.SIGTERM)
    start = time.monotonic()
    _out, err = daemon.communicate(timeout=15)

    assert time.monotonic() - start < 10
    assert daemon.returncode == 0, err
    # What it stored is committed, and the rest is still in the inbox: nothing lost.
    n = count_rows(config)
    assert server.count(user, "INBOX") + server.count(user, "Processed") == 200
    assert server.count(user, "Processed") <= n
    run_cli(config, "fetch", "--once", check=True)
    assert count_rows(config) == 200


def test_daemon_tells_systemd_ready_status_and_stopping(
    account_config, imap_account: ImapAccount, tmp_path: Path
) -> None:
    config = account_config()
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(20)
    daemon = start_daemon(config, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"})
    try:
        messages = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("WATCHDOG=1" in m for m in messages):
            messages.append(sock.recv(4096).decode("utf-8"))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=15)
    sock.settimeout(0.5)
    with contextlib.suppress(TimeoutError):
        while True:  # whatever it sent before exiting
            messages.append(sock.recv(4096).decode("utf-8"))
    sock.close()
    joined = "\n".join(messages)
    assert "READY=1" in messages[0]
    assert "STATUS=đã kết nối hộp thư" in messages[0]
    assert "WATCHDOG=1" in joined
    assert "STOPPING=1" in messages[-1]


def test_daemon_reconnects_with_backoff_when_the_server_comes_back(
    make_config, private_dovecot: Dovecot
) -> None:
    account = ImapAccount(private_dovecot, "backoff")
    config = make_config(imap=account.imap_config(poll_seconds=1), acknowledge=NO_ACK)
    private_dovecot.append("backoff", [citizen_mail(1)])
    daemon = start_daemon(config)
    try:
        wait_for(lambda: count_rows(config) == 1, 30)
        private_dovecot.stop()
        time.sleep(1.5)
        private_dovecot.start()
        private_dovecot.append("backoff", [citizen_mail(2)])
        wait_for(lambda: count_rows(config) == 2, 60)  # backoff 2, 4, 8… s; slower under load
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=15)
    assert "retrying in" in err


# ----- keys and the seal ---------------------------------------------------------------


def test_reveal_opens_the_original_and_writes_an_audit_record(
    account_config, imap_account: ImapAccount, archive_keys, tmp_path: Path
) -> None:
    config = account_config()
    mail = citizen_mail(7)
    imap_account.server.append(imap_account.user, [mail])
    run_cli(config, "fetch", "--once", check=True)
    ref = stored(config)[0]["ref"]
    _pub, private, passfile = archive_keys
    out = tmp_path / "original.eml"

    result = run_cli(config, "reveal", ref, "--private-key", str(private),
                     "--passphrase-file", str(passfile), "--out", str(out))

    assert result.returncode == 0, result.stderr
    assert out.read_bytes().replace(b"\r\n", b"\n") == mail.replace(b"\r\n", b"\n")
    with store_db(config) as db:
        rows = db.execute("SELECT action, ref, by_user FROM audit").fetchall()
    assert rows == [("reveal", ref, rows[0][2])] and rows[0][2]


def test_reveal_with_a_wrong_passphrase_fails_cleanly(
    account_config, imap_account: ImapAccount, archive_keys, tmp_path: Path
) -> None:
    config = account_config()
    imap_account.server.append(imap_account.user, [citizen_mail(1)])
    run_cli(config, "fetch", "--once", check=True)
    ref = stored(config)[0]["ref"]
    wrong = tmp_path / "wrong"
    wrong.write_text("sai mật khẩu")

    result = run_cli(config, "reveal", ref, "--private-key", str(archive_keys[1]),
                     "--passphrase-file", str(wrong))

    assert result.returncode == 2
    assert "wrong passphrase" in result.stderr
    with store_db(config) as db:
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 0


def test_keys_generate_encrypts_the_private_key_with_mode_0600(tmp_path: Path) -> None:
    out = tmp_path / "keys"

    result = run_cli(None, "keys", "generate", "--out", str(out),
                     input=f"{PASSPHRASE}\n{PASSPHRASE}\n")

    assert result.returncode == 0, result.stderr
    private = out / "archive-private.pem"
    assert (private.stat().st_mode & 0o777) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    assert b"PUBLIC KEY" in (out / "archive-public.pem").read_bytes()
    again = run_cli(None, "keys", "generate", "--out", str(out), input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    (tmp_path / "file").write_text("x")
    blocked = run_cli(None, "keys", "generate", "--out", str(tmp_path / "file" / "keys"),
                      input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    assert blocked.returncode == 2 and "cannot create the folder" in blocked.stderr
    assert "Traceback" not in blocked.stderr


def test_the_store_file_is_private(account_config, imap_account: ImapAccount) -> None:
    import tomllib

    config = account_config()
    imap_account.server.append(imap_account.user, [citizen_mail(1)])
    run_cli(config, "fetch", "--once", check=True)
    path = Path(tomllib.loads(config.read_text())["store"]["path"])
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1


def test_received_date_is_the_mailbox_local_date(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config()
    # 20:30 UTC on 30 November is already 1 December in Hà Nội.
    when = dt.datetime(2026, 11, 30, 20, 30, tzinfo=dt.UTC)
    imap_account.server.append(imap_account.user, [citizen_mail(1)], when=when)
    run_cli(config, "fetch", "--once", check=True)
    assert stored(config)[0]["date"] == "2026-12-01"


def test_run_alerts_leaders_of_an_urgent_message_within_2_minutes(
    make_config, imap_account: ImapAccount, smtp_plain
) -> None:
    config = make_config(imap=imap_account.imap_config(poll_seconds=600), acknowledge=NO_ACK,
                         smtp=smtp_plain.smtp_config("none"))
    server, user = imap_account.server, imap_account.user
    daemon = start_daemon(config)
    try:
        wait_for(lambda: count_rows(config) == 0 and daemon.poll() is None, 10)
        time.sleep(1.0)
        start = time.monotonic()
        server.append(user, [
            citizen_mail(1, body="Cháy nhà ở ngõ 7, khói bốc lên nghi ngút, có người mắc kẹt "
                                 "trên tầng hai, đề nghị gọi cứu hỏa ngay!"),
            citizen_mail(2, body="Dây điện bị đứt rơi xuống đường, đang tóe lửa, rất nguy hiểm "
                                 "cho người đi qua."),
        ])
        wait_for(lambda: len(smtp_plain.envelopes) >= 1, 120)
        elapsed = time.monotonic() - start
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=15)
    urgent = [r for r in stored(config) if r["urgency"] == "khan"]
    assert len(urgent) == 2, stored(config)
    assert elapsed < 120
    assert len(smtp_plain.envelopes) == 1, "two urgent messages, one batched alert"
    alert = smtp_plain.messages()[0]
    body = alert.get_body(("plain",)).get_content()
    assert all(r["ref"] in body for r in urgent)
    assert "nguoidan" not in alert.as_string()


def test_verbose_logs_of_a_drain_name_no_sender_subject_or_text(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config()
    imap_account.server.append(imap_account.user, [citizen_mail(5)])

    result = subprocess.run(
        [sys.executable, "-m", "mailbox_processor", "--config", str(config), "-vv", "fetch", "--once"],
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "HT-" in result.stderr, "the debug log should at least name the reference code"
    for planted in ("nguoidan5", "Người dân 5", "Góp ý số 5", "Kính gửi", "mail.gmail.example"):
        assert planted not in result.stderr


# ----- XOAUTH2 (Gmail, Microsoft 365) ---------------------------------------------------


class Introspection(http.server.BaseHTTPRequestHandler):
    """A token introspection endpoint (RFC 7662) that knows one token, as Dovecot asks it."""

    token = "ya29.token-for-the-ward"
    user = "oauth-user"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        active = form.get("token", [""])[0] == self.token
        body = json.dumps({"active": "true" if active else "false", "username": self.user})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def oauth2_dovecot():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Introspection)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server = Dovecot.create(oauth2_url=f"http://127.0.0.1:{httpd.server_port}/introspect")
    server.start()
    yield server
    server.destroy()
    httpd.shutdown()


def oauth2_config(make_config, server: Dovecot, **imap: object) -> Path:
    return make_config(acknowledge=NO_ACK, imap={
        "host": "127.0.0.1", "port": server.port, "security": "none", "auth": "xoauth2",
        "username": Introspection.user, **imap})


def test_xoauth2_with_a_token_file_drains_the_mailbox(
    make_config, oauth2_dovecot: Dovecot, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(Introspection.token + "\n")
    config = oauth2_config(make_config, oauth2_dovecot, oauth2_token_file=str(token))
    oauth2_dovecot.append(Introspection.user, [citizen_mail(1), citizen_mail(2)])

    result = run_cli(config, "fetch", "--once")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stored 2, duplicates 0, quarantined 0"


def test_xoauth2_token_from_a_command(make_config, oauth2_dovecot: Dovecot) -> None:
    config = oauth2_config(make_config, oauth2_dovecot,
                           oauth2_token_command=f"echo {Introspection.token}")
    oauth2_dovecot.append(Introspection.user, [citizen_mail(1)])

    assert run_cli(config, "fetch", "--once", check=True).stdout.startswith("stored 1")


def test_an_expired_xoauth2_token_is_a_login_failure(
    make_config, oauth2_dovecot: Dovecot, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("ya29.expired")
    config = oauth2_config(make_config, oauth2_dovecot, oauth2_token_file=str(token))

    result = run_cli(config, "fetch", "--once")

    assert result.returncode == 1
    assert "login refused" in result.stderr
    assert "ya29" not in result.stderr


# ----- orders of events that once lost or blocked mail ------------------------------------


def drain_in_process(config_path: Path, on_message=lambda _o: None, stop=None) -> None:
    from mailbox_processor import config as config_mod
    from mailbox_processor import daemon, pipeline
    from mailbox_processor.imap import Mailbox
    from mailbox_processor.store import Store

    config = config_mod.load(config_path)
    store = Store.open(config.store.path)
    mailbox = Mailbox.connect(config)
    try:
        daemon.drain(mailbox, store, pipeline.Context.load(config), stop or threading.Event(),
                     on_message=on_message)
    finally:
        mailbox.close()
        store.close()


def test_a_stop_right_after_a_duplicate_loses_no_new_mail(
    account_config, imap_account: ImapAccount
) -> None:
    """A known message behind a new one in the inbox: the new one must not be passed over."""
    config = account_config()
    server, user = imap_account.server, imap_account.user
    old = citizen_mail(1)
    server.append(user, [old])
    run_cli(config, "fetch", "--once", check=True)
    server.append(user, [citizen_mail(2), old])  # new mail, then a copy of stored mail
    stop = threading.Event()

    drain_in_process(config, on_message=lambda _o: stop.set(), stop=stop)
    drain_in_process(config)

    assert len(stored(config)) == 2
    assert server.count(user, "INBOX") == 0


def test_an_oversized_message_moved_back_to_the_inbox_is_a_duplicate(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config(max_message_bytes=20_000)
    server, user = imap_account.server, imap_account.user
    server.append(user, [citizen_mail(1, body="x" * 60_000)])
    run_cli(config, "fetch", "--once", check=True)
    with server.client(user) as c:  # a volunteer puts it back
        c.select_folder("Quarantine")
        c.move(c.search(["ALL"]), "INBOX")
    server.append(user, [citizen_mail(2)])

    result = run_cli(config, "fetch", "--once")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stored 1, duplicates 1, quarantined 0"
    assert len(stored(config)) == 2


def test_an_urgent_message_early_in_a_long_drain_is_alerted_before_the_drain_ends(
    make_config, imap_account: ImapAccount, smtp_plain
) -> None:
    config = make_config(imap=imap_account.imap_config(batch_size=10), acknowledge=NO_ACK,
                         smtp=smtp_plain.smtp_config("none"), alerts={"batch_seconds": 1})
    server, user = imap_account.server, imap_account.user
    fire = citizen_mail(0, body="Cháy nhà ở ngõ 7, khói bốc lên nghi ngút, có người mắc kẹt, "
                                "gọi cứu hỏa ngay!")
    server.append(user, [fire] + [citizen_mail(i) for i in range(1, 1500)])
    # Not start_daemon(): 1,500 lines of -v log would fill a pipe nobody reads yet.
    daemon = subprocess.Popen(
        [sys.executable, "-m", "mailbox_processor", "--config", str(config), "run"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(smtp_plain.envelopes) == 1, 60)
        stored_when_alerted = count_rows(config)
        wait_for(lambda: count_rows(config) == 1500, 120)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
    assert stored_when_alerted < 1500, "the alert waited for the whole drain"
    assert len(smtp_plain.envelopes) == 1


def test_without_idle_the_daemon_polls_every_poll_seconds(
    account_config, imap_account: ImapAccount
) -> None:
    config = account_config(idle=False, poll_seconds=1)
    daemon = start_daemon(config)
    try:
        wait_for(lambda: daemon.poll() is None and count_rows(config) == 0, 10)
        time.sleep(1.5)
        imap_account.server.append(imap_account.user, [citizen_mail(1)])
        elapsed = wait_for(lambda: count_rows(config) == 1, 10)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=15)
    assert elapsed < 4


def test_a_refused_login_is_told_to_the_operators_at_once_and_so_is_the_recovery(
    make_config, imap_account: ImapAccount, smtp_plain
) -> None:
    imap = imap_account.imap_config()
    password_file = Path(str(imap["password_file"]))
    password_file.write_text("an old password", encoding="utf-8")
    config = make_config(imap=imap, acknowledge=NO_ACK, smtp=smtp_plain.smtp_config("none"),
                         alerts={"operators": ["it@phuong.example.vn"]})
    daemon = start_daemon(config)
    try:
        wait_for(lambda: len(smtp_plain.envelopes) == 1, 20)
        time.sleep(6)  # two more refused attempts (backoff 2 s, then 4 s)
        assert len(smtp_plain.envelopes) == 1, "told once per outage, not at every retry"
        password_file.write_text(imap_account.server.password, encoding="utf-8")
        wait_for(lambda: len(smtp_plain.envelopes) == 2, 30)
        imap_account.server.append(imap_account.user, [citizen_mail(1)])
        wait_for(lambda: count_rows(config) == 1, 15)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=15)
    down, back = smtp_plain.messages()
    assert [e.rcpt_tos for e in smtp_plain.envelopes] == [("it@phuong.example.vn",)] * 2
    assert down["Subject"] == "[CHÚ Ý] Hòm thư số không nhận được thư mới"
    assert down["Auto-Submitted"] == "auto-generated"
    assert "từ chối đăng nhập" in down.get_content()
    assert back["Subject"] == "Hòm thư số: đã nhận thư trở lại"
    assert "không mất thư nào" in back.get_content()



def test_a_store_folder_that_cannot_be_made_is_one_line_for_every_command(
    make_config, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    config = make_config(store={"path": str(tmp_path / "file" / "state" / "store.sqlite3")})
    for command in (("fetch", "--once"), ("digest", "send"), ("list",)):
        r = run_cli(config, *command)
        assert r.returncode == 2, (command, r.stderr)
        assert "store.path" in r.stderr and "Traceback" not in r.stderr, command
