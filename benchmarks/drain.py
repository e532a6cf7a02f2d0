"""Drain throughput and memory against a real Dovecot, with its baselines in the same run.

    .venv/bin/python benchmarks/drain.py [-n 2000]

Seeds a throwaway Dovecot with N citizen messages (a realistic mix of sizes:
mostly short text, some long, some HTML, a few small photos) and times, on
the same messages:
  floor     imapclient fetching BODY.PEEK[] in batches and writing each to a file;
  getmail6  retrieving them into a Maildir (what a ward would otherwise run);
  fetch     `mailbox-processor fetch --once`, doing all its work.
Then, separately, a drain with a 20 MB message among photo mail, for peak RSS.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import write_toml  # noqa: E402
from tests.dovecot import Dovecot  # noqa: E402

# Topic words and the everyday words around them, so that texts read roughly like
# petitions (keywords are a minority of the syllables), not like a keyword list.
TOPIC = (
    "đường ngõ rác thải cống ngập nước điện chiếu sáng karaoke tiếng ồn trường học phường "
    "tổ dân phố hộ nghèo trợ cấp giấy tờ thủ tục vỉa hè lấn chiếm cây xanh mùi hôi muỗi"
).split()
COMMON = (
    "tôi là của và có này được không những người ở các cho với đã đang rất nhiều từ khi "
    "nhà chúng tôi mong kính gửi xin cảm ơn đề nghị gia đình hàng ngày tháng năm bà con "
    "khu vực trước sau nhưng vẫn chưa lại cũng vì thế nên ai"
).split()
SURNAMES = (
    "Nguyễn Trần Lê Phạm Hoàng Vũ Đặng Bùi Đỗ Ngô"
).split()
GIVEN = (
    "An Bình Chi Dũng Hà Hải Hương Lan Minh Nam Phương Quang Thảo Tuấn"
).split()
PASSWORD = "bench-password"  # getmail6 logs in with LOGIN, which carries ASCII only
USER = "bench"


def text(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(TOPIC if rng.random() < 0.3 else COMMON) for _ in range(n_words)]
    sentences = [" ".join(words[i:i + 12]).capitalize() + "." for i in range(0, n_words, 12)]
    return " ".join(sentences)


def photo(rng: random.Random, side: int) -> bytes:
    from PIL import Image

    img = Image.effect_noise((side, side), rng.uniform(20, 80)).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def message(rng: random.Random, i: int, kind: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{rng.choice(SURNAMES)} Văn {rng.choice(GIVEN)} <dan{i}@mail.example>"
    msg["To"] = f"hopthu+tdp{i % 5 + 1}@phuong.example.vn"
    msg["Subject"] = f"Góp ý {i}"
    msg["Message-ID"] = f"<{i}.{rng.random()}@mail.example>"
    if kind == "long":
        msg.set_content(text(rng, 600))
    elif kind == "html":
        msg.set_content(text(rng, 80))
        msg.add_alternative(f"<html><body><p>{text(rng, 80)}</p></body></html>", subtype="html")
    elif kind == "photo":
        msg.set_content(text(rng, 40))
        msg.add_attachment(photo(rng, 800), maintype="image", subtype="jpeg", filename="IMG_1.JPG")
    elif kind == "huge":
        msg.set_content(text(rng, 40))
        # 15 MB of PDF is 20 MB once base64-encoded in the message.
        msg.add_attachment(os.urandom(15 * 1024 * 1024), maintype="application", subtype="pdf",
                           filename="ho-so.pdf")
    else:
        msg.set_content(text(rng, rng.randint(20, 150)))
    return msg.as_bytes()


def text_mix(n: int, rng: random.Random) -> list[bytes]:
    kinds = ["short"] * 85 + ["long"] * 5 + ["html"] * 10
    return [message(rng, i, rng.choice(kinds)) for i in range(n)]


def timed(label: str, fn) -> float:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    print(f"  {label:<10} {elapsed:7.2f} s", flush=True)
    return elapsed


def floor(server: Dovecot, out: Path) -> None:
    """The least any drain must do: fetch every message and write it down."""
    import imapclient

    out.mkdir()
    with imapclient.IMAPClient("127.0.0.1", port=server.port, ssl=False) as c:
        c.login(USER, PASSWORD)
        c.select_folder("INBOX", readonly=True)
        uids = c.search(["ALL"])
        for start in range(0, len(uids), 50):
            for uid, data in c.fetch(uids[start:start + 50], [b"BODY.PEEK[]"]).items():
                (out / f"{uid}.eml").write_bytes(data[b"BODY[]"])


def getmail(server: Dovecot, work: Path) -> None:
    maildir = work / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    rc = work / "getmailrc"
    rc.write_text(
        "[retriever]\ntype = SimpleIMAPRetriever\nserver = 127.0.0.1\n"
        f"port = {server.port}\nusername = {USER}\npassword = {PASSWORD}\n"
        "mailboxes = (\"INBOX\",)\n\n"
        f"[destination]\ntype = Maildir\npath = {maildir}/\n\n"
        "[options]\nread_all = true\ndelete = false\nverbose = 0\n"
    )
    cmd = [str(Path(sys.executable).parent / "getmail"), "--rcfile", str(rc),
           "--getmaildir", str(work)]
    if os.geteuid() == 0:
        # getmail refuses to deliver as root (or forks a child per message to switch
        # user): run Debian's getmail6 as an ordinary user, as a ward would.
        if not Path("/usr/bin/getmail").exists():
            raise SystemExit("as root this needs Debian's getmail6: apt-get install getmail6")
        cmd[0] = "/usr/bin/getmail"
        work.parent.chmod(0o755)
        for d in (work, maildir, *maildir.iterdir()):
            shutil.chown(d, "nobody", "nogroup")
        shutil.chown(rc, "nobody", "nogroup")
        cmd = ["runuser", "-u", "nobody", "--", *cmd]
    subprocess.run(cmd, check=True)


# The child reports its own VmHWM at exit. Its ru_maxrss would not do: Linux carries
# the parent's peak across fork/exec into it, and this process holds every test message.
REPORT_PEAK = """
import atexit, re, sys
def report():
    status = open("/proc/self/status").read()
    open(path, "w").write(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
path = sys.argv.pop(1)
atexit.register(report)
from mailbox_processor.cli import main
sys.argv[0] = "mailbox-processor"
main()
"""


def fetch_once(config: Path) -> tuple[int, int]:
    """Run `fetch --once`: (its own peak RSS, the peak PSS of it and its workers), KiB."""
    with tempfile.NamedTemporaryFile("r") as peak:
        cmd = [sys.executable, "-c", REPORT_PEAK, peak.name, "--config", str(config),
               "fetch", "--once"]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        tree = 0
        while p.poll() is None:  # sampled: the workers leave no VmHWM behind
            tree = max(tree, tree_pss(p.pid))
            time.sleep(0.05)
        if p.returncode != 0:
            raise SystemExit("fetch --once failed")
        return int(peak.read()), tree


def tree_pss(root: int) -> int:
    """Proportional set size of a process and all its descendants, KiB: pages the
    forked workers share with their parent count once, not once per process."""
    try:
        rollup = Path(f"/proc/{root}/smaps_rollup").read_text()
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
    except OSError:
        return 0  # it just ended
    own = next((int(line.split()[1]) for line in rollup.splitlines()
                if line.startswith("Pss:")), 0)
    return own + sum(tree_pss(int(child)) for child in children)


def make_config(work: Path, server: Dovecot) -> Path:
    from mailbox_processor import seal

    seal.generate(work / "keys", b"benchmark passphrase")
    (work / "imap-password").write_text(PASSWORD)
    return write_toml(work / "config.toml", {
        "mailbox": {"address": "hopthu@phuong.example.vn", "name": "Benchmark"},
        "imap": {"host": "127.0.0.1", "port": server.port, "security": "none",
                 "username": USER, "password_file": str(work / "imap-password")},
        "acknowledge": {"enabled": False},
        "store": {"path": str(work / "state" / "store.sqlite3")},
        "privacy": {"public_key_file": str(work / "keys" / "archive-public.pem"),
                    "pepper_file": str(work / "state" / "pepper")},
    }, [{"slug": f"tdp{i}", "name": f"Tổ dân phố {i}"} for i in range(1, 6)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="text messages (default 2000)")
    args = ap.parse_args()
    rng = random.Random(1)
    work = Path(tempfile.mkdtemp(prefix="hts-bench-"))
    server = Dovecot.create(password=PASSWORD)
    server.start()
    try:
        config = make_config(work, server)
        mails = text_mix(args.n, rng)
        server.append(USER, mails)
        mb = sum(map(len, mails)) / 1e6
        print(f"{args.n} text messages, {mb:.1f} MB in all")
        t_floor = timed("floor", lambda: floor(server, work / "floor"))
        t_getmail = timed("getmail6", lambda: getmail(server, work / "getmail"))
        rss: list[tuple[int, int]] = []
        t_fetch = timed("fetch", lambda: rss.append(fetch_once(config)))
        print(f"  messages/s: floor {args.n / t_floor:.0f}, getmail6 {args.n / t_getmail:.0f}, "
              f"fetch {args.n / t_fetch:.0f}")
        print(f"  fetch vs getmail6: {t_getmail / t_fetch:.2f}x the throughput; "
              f"vs floor: {t_floor / t_fetch:.2f}x")
        print(f"  peak RSS {rss[0][0] / 1024:.0f} MB; with its workers (PSS) {rss[0][1] / 1024:.0f} MB")

        photos = [message(rng, 10_000 + i, "photo") for i in range(30)]
        server.append(USER, [*photos[:15], message(rng, 20000, "huge"), *photos[15:]])
        print("30 photo messages and one 20 MB message")
        rss.clear()
        t_photo = timed("fetch", lambda: rss.append(fetch_once(config)))
        print(f"  messages/s: {31 / t_photo:.1f}; peak RSS {rss[0][0] / 1024:.0f} MB; "
              f"with its workers (PSS) {rss[0][1] / 1024:.0f} MB")
    finally:
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
