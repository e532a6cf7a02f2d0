"""The local demo: a throwaway Dovecot, sample Vietnamese mail, the whole pipeline, the results.

Run through scripts/demo, which installs what this needs first. Everything
is written under demo-output/ and the Dovecot is stopped at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.demo_mail import messages  # noqa: E402
from tests.conftest import write_toml  # noqa: E402
from tests.dovecot import PASSWORD, Dovecot  # noqa: E402

OUT = ROOT / "demo-output"
PASSPHRASE = "demo-chi-de-thu"
USER = "hopthu"


def cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mailbox_processor", "--config", str(config), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"demo: `{' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def title(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m")


def write_config(server: Dovecot) -> Path:
    (OUT / "imap-password").write_text(PASSWORD, encoding="utf-8")
    return write_toml(OUT / "config.toml", {
        "mailbox": {"address": "hopthu@phuong.example.vn",
                    "name": "Hòm thư số – Ủy ban MTTQ phường Ngọc Sơn"},
        "imap": {"host": "127.0.0.1", "port": server.port, "security": "none",
                 "username": USER, "password_file": str(OUT / "imap-password")},
        "smtp": {"host": "127.0.0.1", "port": 2525, "security": "none",
                 "from": "Hòm thư số <hopthu@phuong.example.vn>"},
        "digest": {"to": ["chutich@phuong.example.vn"]},
        "acknowledge": {"enabled": False},  # no SMTP server in the demo
        "store": {"path": str(OUT / "state" / "store.sqlite3")},
        "privacy": {"public_key_file": str(OUT / "keys" / "archive-public.pem"),
                    "pepper_file": str(OUT / "state" / "pepper")},
    }, [
        {"slug": "tdp1", "name": "Tổ dân phố 1"},
        {"slug": "tdp3", "name": "Tổ dân phố 3"},
        {"slug": "nvh", "name": "Nhà văn hóa khu phố"},
    ])


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    (OUT / "passphrase").write_text(PASSPHRASE, encoding="utf-8")
    server = Dovecot.create()
    server.start()
    try:
        config = write_config(server)
        title("Archive key pair (the private key would go OFF the server)")
        print(cli(config, "keys", "generate", "--out", str(OUT / "keys"),
                  "--passphrase-file", str(OUT / "passphrase")).stdout, end="")

        title(f"12 citizen messages delivered to a local Dovecot (127.0.0.1:{server.port})")
        server.append(USER, messages())
        print(f"INBOX: {server.count(USER, 'INBOX')} messages")

        title("mailbox-processor fetch --once")
        print(cli(config, "fetch", "--once").stdout, end="")
        print(f"INBOX: {server.count(USER, 'INBOX')}, Processed: "
              f"{server.count(USER, 'Processed')}, Quarantine: {server.count(USER, 'Quarantine')}")

        title("mailbox-processor list")
        listing = cli(config, "list").stdout
        print(listing, end="")

        first = listing.split()[0] if listing else None
        if first:
            title(f"mailbox-processor show {first}  (the readable, anonymised copy)")
            print(cli(config, "show", first).stdout, end="")
        for ref_line in listing.splitlines():
            if " khan" in ref_line:
                ref = ref_line.split()[0]
                title(f"mailbox-processor show {ref}  (urgent)")
                print(cli(config, "show", ref).stdout, end="")
                break

        digest = cli(config, "digest", "preview", "--out", str(OUT / "digest.html"), check=False)
        if digest.returncode == 0:
            title("Digest preview (what leaders receive)")
            print(f"HTML: {OUT / 'digest.html'}\ntext: {OUT / 'digest.txt'}\n")
            print((OUT / "digest.txt").read_text(encoding="utf-8"))

        posters = cli(config, "qr", "--all", "--out", str(OUT / "qr"), check=False)
        if posters.returncode == 0:
            title("QR codes and posters")
            for p in sorted((OUT / "qr").iterdir()):
                print(p)
    finally:
        server.destroy()
    print(f"\nEverything the demo wrote is in {OUT}/ (the demo's Dovecot is stopped).")


if __name__ == "__main__":
    main()
