"""The config contract: every mistake is one line naming the file and the key, exit 2."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbox_processor import config as config_mod
from mailbox_processor.errors import ConfigError
from tests.conftest import run_cli, write_toml

# (what a ward's volunteer might write, the key the error must name, what it must say)
MISTAKES = [
    ({"imap": {"port": "993"}}, "imap.port", "must be an integer"),
    ({"imap": {"security": "ssl"}}, "imap.security", '"tls", "starttls" or "none"'),
    ({"imap": {"host": "imap.example.vn", "security": "none"}}, "imap.security",
     "clear text"),
    ({"imap": {"port": 0}}, "imap.port", "between 1 and 65535"),
    ({"imap": {"pasword_file": "/etc/x"}}, "imap.pasword_file", "unknown key"),
    ({"imap": {"password_file": "/a", "password_env": "B", "username": "u"}}, "imap",
     "not both"),
    ({"imap": {"auth": "xoauth2"}}, "imap.auth", "oauth2_token_file"),
    ({"imap": {"after_processing": "archive"}}, "imap.after_processing", '"move" or "delete"'),
    ({"smtp": {"from": "Hòm thư số"}}, "smtp.from", "an address"),
    ({"smtp": {"auth": "oauth"}}, "smtp.auth", '"password" or "xoauth2"'),
    ({"mailbox": {"address": "hopthu"}}, "mailbox.address", "not an e-mail address"),
    ({"mailbox": {"name": "Hòm thư\nsố"}}, "mailbox.name", "single line"),
    ({"mailbox": {"timezone": "Asia/Hanoi"}}, "mailbox.timezone", "not a known time zone"),
    ({"digest": {"to": ["chutich"]}}, "digest.to", "not an e-mail address"),
    ({"digest": {"to": "chutich@phuong.example.vn"}}, "digest.to", "a list of strings"),
    ({"digest": {"language": "fr"}}, "digest.language", '"vi" or "en"'),
    ({"alerts": {"operators": ["it"]}}, "alerts.operators", "not an e-mail address"),
    ({"alerts": {"intake_down_minutes": 0}}, "alerts.intake_down_minutes", "at least 1"),
    ({"privacy": {"redact": ["name", "address"]}}, "privacy.redact", "allowed"),
    ({"qr": {"tag": "plus-address"}}, "qr.tag", '"plus", "subject" or "none"'),
    ({"retention": {"days": 0}}, "retention.days", "at least 1"),
    ({"store": None}, "[store]", "missing section"),
    ({"mailbox": {"address": None}}, "mailbox.address", "is required"),
    ({"mailbx": {"address": "x@y.vn"}}, "[mailbx]", "unknown section"),
]


def _config(make_config: Callable[..., Path], change: dict) -> Path:
    """A valid config with `change` applied: a value of None drops that key or section."""
    path = make_config()
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    locations = data.pop("locations", [])
    for section, table in change.items():
        if table is None:
            data.pop(section, None)
            continue
        merged = {**data.get(section, {}), **table}
        data[section] = {k: v for k, v in merged.items() if v is not None}
    return write_toml(path, data, locations)


@pytest.mark.parametrize(("change", "key", "says"), MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_names_the_file_and_the_key(make_config: Callable[..., Path], change: dict,
                                                 key: str, says: str) -> None:
    path = _config(make_config, change)
    with pytest.raises(ConfigError) as e:
        config_mod.load(path)
    message = str(e.value)
    assert message.startswith(f"{path}:") and key in message and says in message, message


def test_the_command_line_says_it_in_one_line_with_exit_2(make_config: Callable[..., Path]) -> None:
    path = make_config(imap={"port": "993"})
    for command in (("list",), ("fetch", "--once"), ("digest", "send"), ("check",)):
        r = run_cli(path, *command)
        if command == ("check",):  # check reports it as its first ✗ line instead
            assert r.returncode == 1 and r.stdout.startswith("✗") and "imap.port" in r.stdout
            continue
        assert r.returncode == 2, command
        assert r.stderr.strip().count("\n") == 0 and "imap.port" in r.stderr, r.stderr


def test_a_file_that_is_not_toml_or_not_there(tmp_path: Path) -> None:
    broken = tmp_path / "config.toml"
    broken.write_text('[imap]\nhost = "imap.example.vn\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_mod.load(broken)
    r = run_cli(tmp_path / "missing.toml", "list")
    assert r.returncode == 2 and "no such config file" in r.stderr and "Traceback" not in r.stderr


def test_the_shipped_example_config_loads(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "config" / "mailbox-processor.example.toml"
    loaded = config_mod.load(example)
    assert loaded.mailbox.address and loaded.imap.security == "tls"
