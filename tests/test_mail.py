"""mail.py against real aiosmtpd servers: TLS, STARTTLS, AUTH, verification, failures."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbox_processor import config as config_mod
from mailbox_processor import mail
from mailbox_processor.errors import ConfigError, TransientError
from tests.smtpd import OAUTH2_TOKEN, SmtpServer


def _message(body: str = "Xin chào, đây là thư thử.") -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "Thư thử"
    msg["From"] = "Hòm thư số <hopthu@phuong.example.vn>"
    msg["To"] = "chutich@phuong.example.vn"
    msg.set_content(body, cte="8bit")
    return msg


def _config(make_config: Callable[..., Path], **smtp: object) -> config_mod.Config:
    return config_mod.load(make_config(smtp=smtp))


def test_plain_relay_receives_the_message_with_8bitmime(
    make_config: Callable[..., Path], smtp_plain: SmtpServer
) -> None:
    cfg = _config(make_config, **smtp_plain.smtp_config("none"))
    mail.send(cfg, _message())
    [env] = smtp_plain.envelopes
    assert env.mail_from == "hopthu@phuong.example.vn"
    assert env.rcpt_tos == ("chutich@phuong.example.vn",)
    assert "BODY=8BITMIME" in env.mail_options
    assert "đây là thư thử" in env.message().get_content()


def test_starttls_with_auth_and_the_wards_ca_file(
    make_config: Callable[..., Path], smtp_starttls: SmtpServer, tmp_path: Path
) -> None:
    cfg = _config(make_config, **smtp_starttls.smtp_config("starttls", tmp_path / "pw"))
    mail.check(cfg)
    mail.send(cfg, _message())
    assert len(smtp_starttls.envelopes) == 1


def test_implicit_tls_with_auth(
    make_config: Callable[..., Path], smtp_tls: SmtpServer, tmp_path: Path
) -> None:
    cfg = _config(make_config, **smtp_tls.smtp_config("tls", tmp_path / "pw"))
    mail.send(cfg, _message())
    assert len(smtp_tls.envelopes) == 1


def test_a_self_signed_certificate_is_refused_without_ca_file(
    make_config: Callable[..., Path], smtp_starttls: SmtpServer, tmp_path: Path
) -> None:
    table = smtp_starttls.smtp_config("starttls", tmp_path / "pw")
    del table["ca_file"]
    cfg = _config(make_config, **table)
    with pytest.raises(TransientError, match="certificate not trusted"):
        mail.send(cfg, _message())
    assert smtp_starttls.envelopes == []


def test_a_trusted_certificate_for_another_host_name_is_refused(
    make_config: Callable[..., Path], smtp_wrong_name: SmtpServer
) -> None:
    cfg = _config(make_config, **smtp_wrong_name.smtp_config("starttls"))
    with pytest.raises(TransientError, match=r"certificate not trusted.*(Hostname|IP address)"):
        mail.send(cfg, _message())
    assert smtp_wrong_name.envelopes == []


def test_wrong_password_is_one_clear_line(
    make_config: Callable[..., Path], smtp_starttls: SmtpServer, tmp_path: Path
) -> None:
    table = smtp_starttls.smtp_config("starttls", tmp_path / "pw")
    (tmp_path / "pw").write_text("sai mật khẩu", encoding="utf-8")
    cfg = _config(make_config, **table)
    with pytest.raises(TransientError, match="login refused") as info:
        mail.check(cfg)
    assert "\n" not in str(info.value)
    assert "sai mật khẩu" not in str(info.value)


def test_starttls_never_falls_back_to_clear_text(
    make_config: Callable[..., Path], smtp_plain: SmtpServer
) -> None:
    cfg = _config(make_config, **smtp_plain.smtp_config("starttls"))
    with pytest.raises(TransientError, match="does not support"):
        mail.send(cfg, _message())
    assert smtp_plain.envelopes == []


def test_server_down_is_a_transient_error(
    make_config: Callable[..., Path], smtp_down_port: int
) -> None:
    cfg = _config(make_config, host="127.0.0.1", port=smtp_down_port, security="none")
    with pytest.raises(TransientError, match="connection refused"):
        mail.send(cfg, _message())


def test_refused_data_is_a_transient_error(
    make_config: Callable[..., Path], smtp_plain: SmtpServer
) -> None:
    smtp_plain.handler.refuse = True
    cfg = _config(make_config, **smtp_plain.smtp_config("none"))
    with pytest.raises(TransientError, match="451"):
        mail.send(cfg, _message())


def test_no_smtp_section_is_a_config_error(make_config: Callable[..., Path]) -> None:
    cfg = config_mod.load(make_config(smtp=None))
    with pytest.raises(ConfigError, match=r"\[smtp\]"):
        mail.send(cfg, _message())


def test_message_ids_are_on_the_mailbox_domain(make_config: Callable[..., Path]) -> None:
    cfg = config_mod.load(make_config())
    assert mail.message_id(cfg, "digest").endswith("@phuong.example.vn>")


def test_long_lines_travel_as_base64_not_quoted_printable() -> None:
    assert mail.text_cte("ngắn\n" * 3) == "8bit"
    assert mail.text_cte("ư" * 600) == "base64"


def test_without_8bitmime_the_text_parts_become_base64() -> None:
    msg = _message("Xin chào, đây là thư thử.")
    msg.add_alternative("<p>Xin chào</p>", subtype="html", cte="8bit")
    converted = mail._as_base64(msg)
    parts = [p for p in converted.walk() if not p.is_multipart()]
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["base64", "base64"]
    assert parts[0].get_content() == "Xin chào, đây là thư thử.\n"
    assert parts[1].get_content_type() == "text/html"
    assert msg.get_body(("plain",))["Content-Transfer-Encoding"] == "8bit"  # a copy


def _oauth2_config(make_config: Callable[..., Path], server: SmtpServer, token_file: Path,
                   **smtp: object) -> config_mod.Config:
    return _config(make_config, **server.smtp_config("starttls"), username=server.username,
                   auth="xoauth2", oauth2_token_file=str(token_file), **smtp)


def test_xoauth2_logs_in_with_the_token_from_a_file(
    make_config: Callable[..., Path], smtp_oauth2: SmtpServer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(OAUTH2_TOKEN + "\n", encoding="utf-8")
    mail.send(_oauth2_config(make_config, smtp_oauth2, token), _message())
    assert len(smtp_oauth2.envelopes) == 1


def test_xoauth2_token_from_a_command(
    make_config: Callable[..., Path], smtp_oauth2: SmtpServer, tmp_path: Path
) -> None:
    cfg = _config(make_config, **smtp_oauth2.smtp_config("starttls"),
                  username=smtp_oauth2.username, auth="xoauth2",
                  oauth2_token_command=f"echo {OAUTH2_TOKEN}")
    mail.send(cfg, _message())
    assert len(smtp_oauth2.envelopes) == 1


def test_an_expired_xoauth2_token_is_a_clear_login_error(
    make_config: Callable[..., Path], smtp_oauth2: SmtpServer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("ya29.expired", encoding="utf-8")
    with pytest.raises(TransientError, match=r"login refused \(535\); check the OAuth token"):
        mail.send(_oauth2_config(make_config, smtp_oauth2, token), _message())
    assert smtp_oauth2.envelopes == []


def test_xoauth2_without_a_token_source_is_a_config_error(make_config: Callable[..., Path],
                                                          smtp_oauth2: SmtpServer) -> None:
    with pytest.raises(ConfigError, match=r'smtp\.auth = "xoauth2" needs smtp\.oauth2_token_file'):
        _config(make_config, **smtp_oauth2.smtp_config("starttls"), auth="xoauth2")
