"""A real Dovecot IMAP server for the tests, started from a config written into a temporary folder.

One server serves the whole session; each test gets its own IMAP user, and
so its own mailbox. Tests that stop and restart the server get a private one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import imapclient
import pytest

from tests.smtpd import free_port, make_cert

PASSWORD = "mật-khẩu-thử"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_login_user = {login_user}
default_internal_user = {internal_user}
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
{dh}
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth2_mechanisms}
recipient_delimiter = +
mail_location = maildir:{d}/mail/%u
mail_fsync = never
passdb {{
  driver = static
  args = password={password}
  mechanisms = plain login
}}
{oauth2_passdb}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u allow_all_users=yes
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


@dataclass
class Dovecot:
    folder: Path
    port: int
    tls_port: int
    cert: Path
    password: str = PASSWORD
    process: subprocess.Popen | None = None

    @classmethod
    def create(cls, password: str = PASSWORD, oauth2_url: str | None = None) -> Dovecot:
        """A server with a static password, and XOAUTH2 checked against `oauth2_url`
        (an RFC 7662 introspection endpoint) when given."""
        if not os.path.exists(DOVECOT):
            pytest.skip("dovecot is not installed (scripts/test installs dovecot-imapd)")
        d = Path(tempfile.mkdtemp(prefix="hts-dovecot-"))
        d.chmod(0o755)  # Dovecot's unprivileged processes must reach the mail folder
        (d / "mail").mkdir()
        cert, _key = make_cert(d, ["localhost", "127.0.0.1"])
        if os.geteuid() == 0:
            login_user, internal_user = "dovenull", "dovecot"
            uid, gid = "nobody", "nogroup"
            shutil.chown(d / "mail", "nobody", "nogroup")
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            login_user = internal_user = uid = me
            gid = str(os.getegid())
        dh = "ssl_dh = </usr/share/dovecot/dh.pem" if Path("/usr/share/dovecot/dh.pem").exists() else ""
        server = cls(folder=d, port=free_port(), tls_port=free_port(), cert=cert, password=password)
        oauth2 = ""
        if oauth2_url:
            (d / "oauth2.conf.ext").write_text(
                f"introspection_mode = post\nintrospection_url = {oauth2_url}\n"
                "force_introspection = yes\nusername_attribute = username\n"
                "active_attribute = active\nactive_value = true\n")
            oauth2 = (f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                      f"  args = {d}/oauth2.conf.ext\n}}\n")
        (d / "dovecot.conf").write_text(CONF.format(
            oauth2_mechanisms=" xoauth2 oauthbearer" if oauth2_url else "", oauth2_passdb=oauth2,
            d=d, login_user=login_user, internal_user=internal_user, uid=uid, gid=gid, dh=dh,
            password=password, port=server.port, tls_port=server.tls_port))
        return server

    def start(self) -> None:
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.folder / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,  # so stop() can take its imap processes down with it
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = (self.folder / "dovecot.log")
                raise RuntimeError(f"dovecot exited: {err} {log.read_text() if log.exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not start listening in 20 s")

    def stop(self) -> None:
        """An outage: the master and every connection it serves go away at once."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    # ----- talking to it as a test -------------------------------------------------

    def client(self, user: str) -> imapclient.IMAPClient:
        c = imapclient.IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        c.plain_login(user, self.password)
        return c

    def append(self, user: str, messages: list[bytes], folder: str = "INBOX",
               when: dt.datetime | None = None) -> None:
        with self.client(user) as c:
            for m in messages:
                c.append(folder, m, msg_time=when or dt.datetime.now(dt.UTC))

    def count(self, user: str, folder: str) -> int:
        with self.client(user) as c:
            if not c.folder_exists(folder):
                return 0
            return int(c.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def messages(self, user: str, folder: str) -> list[bytes]:
        with self.client(user) as c:
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            return [d[b"BODY[]"] for _u, d in sorted(c.fetch(uids, [b"BODY.PEEK[]"]).items())]

    def set_uidvalidity(self, user: str, folder: str = "INBOX") -> None:
        """Force a new UIDVALIDITY, as a server migration or restore would."""
        cmd = ["doveadm", "-c", str(self.folder / "dovecot.conf"), "mailbox", "update",
               "--uid-validity", str(int(time.time()) + 12345), "-u", user, folder]
        for _attempt in range(20):
            # 75 (EX_TEMPFAIL): the mailbox is still locked by an imap process that is
            # finishing its logout.
            done = subprocess.run(cmd, capture_output=True)
            if done.returncode != 75:
                break
            time.sleep(0.25)
        done.check_returncode()


_users = itertools.count(1)


@dataclass(frozen=True)
class ImapAccount:
    server: Dovecot
    user: str

    def imap_config(self, **extra: object) -> dict[str, object]:
        """The [imap] table for this account over plain loopback, with a password file."""
        pw = self.server.folder / f"{self.user}.password"
        pw.write_text(self.server.password, encoding="utf-8")
        return {"host": "127.0.0.1", "port": self.server.port, "security": "none",
                "username": self.user, "password_file": str(pw), **extra}


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot.create()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def private_dovecot() -> Iterator[Dovecot]:
    """A server of the test's own, for tests that stop and restart it."""
    server = Dovecot.create()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    return ImapAccount(dovecot, f"user{next(_users)}-{os.getpid()}")
