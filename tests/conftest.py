"""Fixtures shared by every test: archive keys, a config file on disk, the real servers.

Server fixtures live in their own modules (tests/dovecot.py, tests/smtpd.py)
and are registered here as plugins.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbox_processor import seal
from mailbox_processor.ops import toml_value

pytest_plugins = ["tests.smtpd", "tests.dovecot"]

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PASSPHRASE = "đúng ngựa pin kẹp giấy"


@pytest.fixture(scope="session")
def archive_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(public key, private key, passphrase file) made by the real key generator."""
    d = tmp_path_factory.mktemp("keys")
    public, private = seal.generate(d / "pair", PASSPHRASE.encode())
    passfile = d / "passphrase"
    passfile.write_text(PASSPHRASE, encoding="utf-8")
    return public, private, passfile


def write_toml(path: Path, sections: dict[str, dict[str, object]],
               locations: list[dict[str, str]]) -> Path:
    lines: list[str] = []
    for name, table in sections.items():
        if table is None:
            continue
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
        lines.append("")
    for loc in locations:
        lines.append("[[locations]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in loc.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


DEFAULT_LOCATIONS = [
    {"slug": "tdp1", "name": "Tổ dân phố 1"},
    {"slug": "tdp3", "name": "Tổ dân phố 3"},
    {"slug": "nvh", "name": "Nhà văn hóa khu phố"},
]


@pytest.fixture
def make_config(tmp_path: Path, archive_keys: tuple[Path, Path, Path]) -> Callable[..., Path]:
    """Write a config file into tmp_path; keyword arguments replace or add whole sections.

    make_config(imap={"host": ..., "port": ...}) merges into the default [imap];
    passing a section as None removes it.
    """
    public, _private, _ = archive_keys

    def make(locations: list[dict[str, str]] | None = None, **overrides: dict | None) -> Path:
        sections: dict[str, dict | None] = {
            "mailbox": {"address": "hopthu@phuong.example.vn",
                        "name": "Hòm thư số – Ủy ban MTTQ phường Ngọc Sơn"},
            "imap": {"host": "127.0.0.1", "port": 1, "security": "none"},
            "smtp": {"host": "127.0.0.1", "port": 1, "security": "none",
                     "from": "Hòm thư số <hopthu@phuong.example.vn>"},
            "digest": {"to": ["chutich@phuong.example.vn"]},
            "store": {"path": str(tmp_path / "state" / "store.sqlite3")},
            "privacy": {"public_key_file": str(public),
                        "pepper_file": str(tmp_path / "state" / "pepper")},
        }
        for name, table in overrides.items():
            if table is None:
                sections[name] = None
            else:
                sections[name] = {**(sections.get(name) or {}), **table}
        return write_toml(tmp_path / "config.toml", sections,
                          DEFAULT_LOCATIONS if locations is None else locations)

    return make


def run_cli(config: Path | None, *args: str, input: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 120,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real installed command in a subprocess, as a user would."""
    cmd = [sys.executable, "-m", "mailbox_processor"]
    if config is not None:
        cmd += ["--config", str(config)]
    result = subprocess.run(
        cmd + list(args), input=input, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (it holds the corpora and labelled texts)")
    return SHARED
