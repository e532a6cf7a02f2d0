"""Acknowledgements, against a real Dovecot and a real aiosmtpd: once, never to machines."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbox_processor import ack, daemon, pipeline
from mailbox_processor import config as config_mod
from mailbox_processor.errors import TransientError
from mailbox_processor.imap import Mailbox
from mailbox_processor.store import Store
from tests.conftest import run_cli
from tests.dovecot import ImapAccount
from tests.smtpd import SmtpServer

MAILBOX = "hopthu@phuong.example.vn"


def citizen_mail(sender: str, headers: dict[str, str] | None = None,
                 body: str = "Kính gửi phường, đèn đường ngõ 12 bị hỏng đã hai tuần.") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Nguyễn Văn An <{sender}>"
    msg["To"] = "hopthu+tdp1@phuong.example.vn"
    msg["Subject"] = "Góp ý về đèn đường"
    msg["Date"] = "Tue, 01 Dec 2026 08:15:00 +0700"
    msg["Message-ID"] = f"<{random.getrandbits(64):x}@mail.gmail.example>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def setup(make_config, imap_account: ImapAccount, smtp_plain: SmtpServer):
    def make(**extra: dict) -> Path:
        return make_config(imap=imap_account.imap_config(), smtp=smtp_plain.smtp_config("none"),
                           **extra)
    return make


def deliver(account: ImapAccount, *messages: bytes) -> None:
    account.server.append(account.user, list(messages))


def start_run(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mailbox_processor", "--config", str(config), "-v", "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )


def store_path(config: Path) -> str:
    return tomllib.loads(config.read_text(encoding="utf-8"))["store"]["path"]


def refs_by_order(config: Path) -> list[str]:
    with sqlite3.connect(store_path(config)) as db:
        return [r[0] for r in db.execute("SELECT ref FROM message ORDER BY rowid")]


def test_acknowledgement_is_sent_once_threaded_and_marked_automatic(
    setup, imap_account: ImapAccount, smtp_plain: SmtpServer
) -> None:
    config = setup()
    original = citizen_mail("an.nguyen@gmail.example")
    deliver(imap_account, original)

    result = run_cli(config, "-v", "fetch", "--once")

    assert result.returncode == 0, result.stderr
    [ref] = refs_by_order(config)
    [envelope] = smtp_plain.envelopes
    assert envelope.rcpt_tos == ("an.nguyen@gmail.example",)
    msg = envelope.message()
    assert msg["To"] == "an.nguyen@gmail.example"
    assert MAILBOX in msg["From"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    original_id = original.split(b"Message-ID: ")[1].split(b"\n")[0].strip().decode()
    assert msg["In-Reply-To"] == original_id
    assert msg["References"] == original_id
    assert ref in msg["Subject"]
    body = msg.get_content()
    assert ref in body
    assert "bảo mật" in body and "ẩn danh" not in body
    assert "lời văn" in body  # the writing itself reaches leaders and can identify its author
    # The address went to the SMTP server only: not to the logs, not into the store.
    assert "an.nguyen" not in result.stdout + result.stderr
    with sqlite3.connect(store_path(config)) as db:
        dump = "\n".join(db.iterdump())
    assert "an.nguyen" not in dump

    assert run_cli(config, "fetch", "--once").returncode == 0
    assert len(smtp_plain.envelopes) == 1


def test_no_acknowledgement_to_auto_replies_lists_bounces_or_our_own_mail(
    setup, imap_account: ImapAccount, smtp_plain: SmtpServer
) -> None:
    config = setup()
    machines = [
        citizen_mail("vacation@example.vn", {"Auto-Submitted": "auto-replied"}),
        citizen_mail("robot@example.vn", {"Auto-Submitted": "auto-generated (cron)"}),
        citizen_mail("list2@example.vn", {"Precedence": "list (announcements)"}),
        citizen_mail("news@example.vn", {"Precedence": "bulk"}),
        citizen_mail("junk@example.vn", {"Precedence": "junk"}),
        citizen_mail("member@example.vn", {"List-Id": "<dan-pho.lists.example.vn>"}),
        citizen_mail("unsubscribe@example.vn", {"List-Unsubscribe": "<mailto:u@example.vn>"}),
        citizen_mail("MAILER-DAEMON@mx.example.vn"),
        citizen_mail("postmaster@example.vn"),
        citizen_mail("noreply@bank.example.vn"),
        citizen_mail("no-reply@shop.example.vn"),
        citizen_mail("bounce@example.vn", {"Return-Path": "<>"}),
        citizen_mail(MAILBOX),
        citizen_mail("looped@example.vn", {"X-Hom-Thu-So": "ack HT-00000"}),
    ]
    people = [
        citizen_mail("binh@example.vn"),
        citizen_mail("chi@example.vn", {"Auto-Submitted": "no (a person wrote this)"}),
    ]
    deliver(imap_account, *machines, *people)

    result = run_cli(config, "fetch", "--once")

    assert result.returncode == 0, result.stderr
    assert len(refs_by_order(config)) == len(machines) + len(people)  # every one stored
    assert sorted(e.rcpt_tos[0] for e in smtp_plain.envelopes) == ["binh@example.vn", "chi@example.vn"]


def test_at_most_three_acknowledgements_a_day_per_sender(
    setup, imap_account: ImapAccount, smtp_plain: SmtpServer
) -> None:
    config = setup()
    deliver(imap_account, *[citizen_mail("an@example.vn", body=f"Góp ý số {i} về rác.")
                            for i in range(4)])
    assert run_cli(config, "fetch", "--once").returncode == 0
    assert len(smtp_plain.envelopes) == 3

    deliver(imap_account, citizen_mail("an@example.vn", body="Góp ý số 5."),
            citizen_mail("other@example.vn"))
    assert run_cli(config, "fetch", "--once").returncode == 0
    assert [e.rcpt_tos[0] for e in smtp_plain.envelopes].count("an@example.vn") == 3
    assert smtp_plain.envelopes[-1].rcpt_tos == ("other@example.vn",)
    assert len(refs_by_order(config)) == 6


def test_acknowledge_disabled_sends_nothing(setup, imap_account: ImapAccount,
                                            smtp_plain: SmtpServer) -> None:
    config = setup(acknowledge={"enabled": False})
    deliver(imap_account, citizen_mail("an@example.vn"))
    assert run_cli(config, "fetch", "--once").returncode == 0
    assert smtp_plain.envelopes == []


def test_smtp_failure_never_fails_intake(setup, imap_account: ImapAccount,
                                         smtp_plain: SmtpServer) -> None:
    config = setup()
    smtp_plain.handler.refuse = True
    deliver(imap_account, citizen_mail("an@example.vn"), citizen_mail("binh@example.vn"))

    result = run_cli(config, "fetch", "--once")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stored 2, duplicates 0, quarantined 0"
    assert "acknowledgement" in result.stderr and "an@example.vn" not in result.stderr
    assert imap_account.server.count(imap_account.user, "Processed") == 2


def test_a_failed_acknowledgement_stays_queued_and_goes_out_later(
    setup, imap_account: ImapAccount, smtp_plain: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ack, "RETRY_FIRST", 0.0)  # retry at once instead of in 30 s
    config = config_mod.load(setup())
    deliver(imap_account, citizen_mail("an@example.vn"))
    store = Store.open(config.store.path)
    mailbox = Mailbox.connect(config)
    acknowledger = ack.Acknowledger(config)
    try:
        daemon.drain(mailbox, store, pipeline.Context.load(config), threading.Event(),
                     on_message=acknowledger.note)
        smtp_plain.handler.refuse = True
        with pytest.raises(TransientError) as failure:
            acknowledger.send_pending(store)
        assert "an@example.vn" not in str(failure.value)
        assert acknowledger.pending == 1

        smtp_plain.handler.refuse = False
        assert acknowledger.send_pending(store) == 1
        assert acknowledger.pending == 0
        assert acknowledger.send_pending(store) == 0
    finally:
        mailbox.close()
        store.close()
    assert [e.rcpt_tos for e in smtp_plain.envelopes] == [("an@example.vn",)]


def test_the_acknowledgement_goes_to_the_envelope_sender_never_to_a_stranger_reply_to(
    setup, imap_account: ImapAccount, smtp_plain: SmtpServer
) -> None:
    config = setup()
    deliver(imap_account,
            citizen_mail("an@example.vn", {"Return-Path": "<an@example.vn>"}),
            citizen_mail("binh@example.vn", {"Reply-To": "someone.else@example.vn"}),
            citizen_mail("chi@example.vn", {"Reply-To": "Chi <CHI@example.vn>"}))
    assert run_cli(config, "fetch", "--once").returncode == 0
    assert sorted(e.rcpt_tos for e in smtp_plain.envelopes) == [
        ("an@example.vn",), ("chi@example.vn",)]


def test_template_wording_is_confidential_not_anonymous() -> None:
    text = ack.render_ack(ack.template_env(), "HT-ABCDE", "Hòm thư số – phường Ngọc Sơn")
    assert "HT-ABCDE" in text and "Hòm thư số – phường Ngọc Sơn" in text
    assert "bảo mật" in text and "ẩn danh" not in text.lower()
    assert "cảm ơn" in text
    assert all(len(line.encode()) < 998 for line in text.splitlines())


def test_the_daemon_acknowledges_and_purges_daily_beside_intake(
    setup, imap_account: ImapAccount, smtp_plain: SmtpServer
) -> None:
    server, user = imap_account.server, imap_account.user
    config = setup(retention={"days": 30, "purge_daily": True})
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    server.append(user, [citizen_mail("old@example.vn", {"Auto-Submitted": "auto-generated"})],
                  when=long_ago)
    assert run_cli(config, "fetch", "--once").returncode == 0
    # Retention drops only what was stored that long ago and already went out in a digest.
    with sqlite3.connect(store_path(config)) as db:
        db.execute("UPDATE message SET stored_on = received_on")
        digest = db.execute("INSERT INTO digest (message_id, created_at, status) "
                            "VALUES ('<d@x>', '2025-01-01', 'sent')").lastrowid
        db.execute("UPDATE submission SET digest_id=?", (digest,))
    deliver(imap_account, citizen_mail("an@example.vn"))
    daemon = start_run(config)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            smtp_plain.envelopes and server.count(user, "Processed") == 1
        ):
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=15)
    assert [e.rcpt_tos for e in smtp_plain.envelopes] == [("an@example.vn",)], err
    assert server.count(user, "Processed") == 1, err  # the old one is gone from the server
    with sqlite3.connect(store_path(config)) as db:
        assert db.execute("SELECT count(*) FROM sealed").fetchone()[0] == 1
    assert "an@example.vn" not in err and "daily purge" in err


def test_a_stopping_daemon_sends_the_acknowledgements_still_waiting_for_a_retry(
    setup, imap_account: ImapAccount, smtp_plain: SmtpServer
) -> None:
    config = setup()
    smtp_plain.handler.refuse = True
    deliver(imap_account, citizen_mail("an@example.vn"))
    daemon = start_run(config)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and smtp_plain.handler.refused == 0:
            time.sleep(0.1)
        assert smtp_plain.handler.refused == 1  # tried once; the next try is 30 s away
        smtp_plain.handler.refuse = False
    finally:
        daemon.send_signal(signal.SIGTERM)  # as `systemctl restart` does
        _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert [e.rcpt_tos for e in smtp_plain.envelopes] == [("an@example.vn",)], err
    assert "an@example.vn" not in err
