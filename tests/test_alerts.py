"""Urgent alerts: batched, marked only after the server accepted, retried after a failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailbox_processor import alerts
from mailbox_processor import config as config_mod
from mailbox_processor.errors import LoginRefused, TransientError
from mailbox_processor.store import Store
from tests.conftest import run_cli
from tests.smtpd import SmtpServer
from tests.test_digest import add, html_of, text_of

FIRE = "Cháy ở nhà số 9 ngõ 4, lửa bốc cao, cần cứu hỏa ngay!"
WIRE = "Dây điện đứt rơi xuống đường trước chợ, đang tóe lửa."
GAS = "Mùi gas nồng nặc ở tầng 3 chung cư, mọi người đang sơ tán."


def _setup(make_config: Callable[..., Path], port: int, **sections: dict) -> tuple[Path, Store]:
    path = make_config(smtp={"host": "127.0.0.1", "port": port, "security": "none"}, **sections)
    cfg = config_mod.load(path)
    return path, Store.open(cfg.store.path)


def _alerted(store: Store) -> set[str]:
    return {r[0] for r in store.conn.execute("SELECT ref FROM submission WHERE alerted=1")}


def test_several_urgent_items_go_out_in_one_alert(
    make_config: Callable[..., Path], smtp_plain: SmtpServer,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    path, store = _setup(make_config, smtp_plain.port)
    cfg = config_mod.load(path)
    key = archive_keys[0]
    urgent = [add(store, key, t, urgency="khan", category=c) for t, c in
              ((FIRE, "an-ninh-trat-tu"), (WIRE, "dien-nuoc-thoat-nuoc"), (GAS, "an-ninh-trat-tu"))]
    add(store, key, "Đề nghị trồng thêm cây xanh ở công viên.", category="moi-truong")
    assert alerts.send_pending(cfg, store) == 3
    [msg] = smtp_plain.messages()
    assert msg["Subject"] == "[KHẨN] Hòm thư số: 3 phản ánh khẩn cấp"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    text = text_of(msg)
    for ref in urgent:
        assert ref in text and ref in html_of(msg)
    assert "cây xanh" not in text
    assert _alerted(store) == set(urgent)
    assert alerts.send_pending(cfg, store) == 0  # nothing twice
    assert len(smtp_plain.envelopes) == 1


def test_a_failed_alert_marks_nothing_and_is_retried(
    make_config: Callable[..., Path], smtp_plain: SmtpServer, smtp_down_port: int,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    path, store = _setup(make_config, smtp_down_port)
    ref = add(store, archive_keys[0], FIRE, urgency="khan")
    with pytest.raises(TransientError, match="connection refused"):
        alerts.send_pending(config_mod.load(path), store)
    assert _alerted(store) == set()
    smtp_plain.handler.refuse = True
    path = make_config(smtp={"host": "127.0.0.1", "port": smtp_plain.port, "security": "none"})
    with pytest.raises(TransientError, match="451"):
        alerts.send_pending(config_mod.load(path), store)
    assert _alerted(store) == set()
    smtp_plain.handler.refuse = False
    assert alerts.send_pending(config_mod.load(path), store) == 1
    assert _alerted(store) == {ref}


def test_the_alerted_item_still_appears_in_the_next_digest_marked_so(
    make_config: Callable[..., Path], smtp_plain: SmtpServer,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    path, store = _setup(make_config, smtp_plain.port)
    ref = add(store, archive_keys[0], FIRE, urgency="khan", category="an-ninh-trat-tu")
    assert alerts.send_pending(config_mod.load(path), store) == 1
    run_cli(path, "digest", "send", check=True)
    _alert, digest_msg = smtp_plain.messages()
    assert f"[{ref}]" in text_of(digest_msg)
    assert "đã báo khẩn" in text_of(digest_msg)


def test_spam_and_automatic_mail_never_alert(
    make_config: Callable[..., Path], smtp_plain: SmtpServer,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    path, store = _setup(make_config, smtp_plain.port)
    add(store, archive_keys[0], "CHÁY HÀNG! Giảm giá 90% hôm nay!", urgency="khan", flags=("spam",))
    add(store, archive_keys[0], FIRE, urgency="khan", flags=("auto",))
    assert alerts.send_pending(config_mod.load(path), store) == 0
    assert smtp_plain.envelopes == []


def test_a_staff_correction_to_urgent_alerts(
    make_config: Callable[..., Path], smtp_plain: SmtpServer,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    path, store = _setup(make_config, smtp_plain.port)
    ref = add(store, archive_keys[0], GAS, urgency="thuong")
    with store.transaction() as c:
        c.execute("INSERT INTO label (ref, category, urgency, by_user, at) VALUES (?,?,?,?,?)",
                  (ref, "an-ninh-trat-tu", "khan", "canbo", "2026-12-01T01:00:00+00:00"))
    assert alerts.send_pending(config_mod.load(path), store) == 1


def test_alerts_go_to_alerts_to_when_set_and_can_be_disabled(
    make_config: Callable[..., Path], smtp_plain: SmtpServer,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    path, store = _setup(make_config, smtp_plain.port,
                         alerts={"to": ["truc-ban@phuong.example.vn"]})
    add(store, archive_keys[0], FIRE, urgency="khan")
    assert alerts.send_pending(config_mod.load(path), store) == 1
    assert smtp_plain.envelopes[0].rcpt_tos == ("truc-ban@phuong.example.vn",)
    add(store, archive_keys[0], WIRE, urgency="khan")
    path = make_config(smtp={"host": "127.0.0.1", "port": smtp_plain.port, "security": "none"},
                       alerts={"enabled": False})
    assert alerts.send_pending(config_mod.load(path), store) == 0


def test_citizen_text_is_escaped_in_alerts_and_absent_from_headers(
    make_config: Callable[..., Path], smtp_plain: SmtpServer,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    path, store = _setup(make_config, smtp_plain.port)
    add(store, archive_keys[0], "<script>alert(1)</script> {{ 7*7 }} cháy!", urgency="khan")
    alerts.send_pending(config_mod.load(path), store)
    [env] = smtp_plain.envelopes
    html = html_of(env.message())
    assert "<script" not in html and "&lt;script&gt;" in html and "{{ 7*7 }}" in html
    assert b"script" not in env.data.split(b"\r\n\r\n", 1)[0]


def test_a_missing_smtp_password_is_transient_so_intake_goes_on(
    make_config: Callable[..., Path], smtp_starttls: SmtpServer,
    archive_keys: tuple[Path, Path, Path], tmp_path: Path,
) -> None:
    table = smtp_starttls.smtp_config("starttls", tmp_path / "pw")
    (tmp_path / "pw").unlink()
    path = make_config(smtp=table)
    store = Store.open(config_mod.load(path).store.path)
    add(store, archive_keys[0], FIRE, urgency="khan")
    with pytest.raises(TransientError, match="password_file"):
        alerts.send_pending(config_mod.load(path), store)
    assert _alerted(store) == set()


def test_a_server_that_stays_unreachable_is_told_after_intake_down_minutes(
    make_config: Callable[..., Path], smtp_plain: SmtpServer
) -> None:
    cfg = config_mod.load(make_config(smtp=smtp_plain.smtp_config("none"),
                                      alerts={"intake_down_minutes": 1}))
    watch = alerts.IntakeWatch(cfg)
    watch.failed(TransientError("IMAP: connecting: ConnectionRefusedError"))
    assert smtp_plain.envelopes == []  # a short outage is nobody's business
    assert watch.since is not None
    watch.since -= 61  # as if the first failure were a minute ago
    watch.failed(TransientError("IMAP: connecting: ConnectionRefusedError"))
    watch.failed(TransientError("IMAP: connecting: ConnectionRefusedError"))
    [msg] = smtp_plain.messages()
    assert smtp_plain.envelopes[0].rcpt_tos == ("chutich@phuong.example.vn",)  # no operators
    text = msg.get_content()
    assert "ConnectionRefusedError" in text and "kiểm tra mạng" in text


def test_an_intake_notice_that_could_not_go_is_tried_again_at_the_next_failure(
    make_config: Callable[..., Path], smtp_plain: SmtpServer
) -> None:
    cfg = config_mod.load(make_config(smtp=smtp_plain.smtp_config("none")))
    watch = alerts.IntakeWatch(cfg)
    smtp_plain.handler.refuse = True
    watch.failed(LoginRefused("IMAP: connecting: login refused"))
    assert not watch.told
    smtp_plain.handler.refuse = False
    watch.failed(LoginRefused("IMAP: connecting: login refused"))
    assert watch.told and len(smtp_plain.envelopes) == 1
    watch.connected()
    watch.connected()  # the recovery is told once, and only after a notice went out
    assert [m["Subject"] for m in smtp_plain.messages()] == [
        "[CHÚ Ý] Hòm thư số không nhận được thư mới", "Hòm thư số: đã nhận thư trở lại"]


def test_the_intake_notice_follows_the_digest_language(
    make_config: Callable[..., Path], smtp_plain: SmtpServer
) -> None:
    cfg = config_mod.load(make_config(smtp=smtp_plain.smtp_config("none"), digest={
        "to": ["chutich@phuong.example.vn"], "language": "en"}))
    alerts.IntakeWatch(cfg).failed(LoginRefused("IMAP: connecting: login refused"))
    [msg] = smtp_plain.messages()
    assert msg["Subject"] == "[ATTENTION] Hòm thư số is not receiving mail"
    assert "expired OAuth" in msg.get_content()


def test_neighbours_reporting_the_same_fire_make_one_entry_in_the_alert(
    make_config: Callable[..., Path], smtp_plain: SmtpServer,
    archive_keys: tuple[Path, Path, Path],
) -> None:
    path, store = _setup(make_config, smtp_plain.port)
    cfg = config_mod.load(path)
    same = [add(store, archive_keys[0], FIRE + suffix, urgency="khan", category="an-ninh-trat-tu")
            for suffix in ("", " Mau len!", " Giúp với!")]
    other = add(store, archive_keys[0], WIRE, urgency="khan", category="dien-nuoc-thoat-nuoc")
    assert alerts.send_pending(cfg, store) == 4
    [msg] = smtp_plain.messages()
    assert msg["Subject"] == "[KHẨN] Hòm thư số: 4 phản ánh khẩn cấp"
    text, html = text_of(msg), html_of(msg)
    assert text.count("[HT-") == 2  # two entries: the fire (grouped) and the wire
    assert "3 ý kiến tương tự" in text and "3 ý kiến tương tự" in html
    for ref in [*same, other]:
        assert ref in text and ref in html
    assert _alerted(store) == {*same, other}
