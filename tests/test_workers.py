"""Worker processes: results in order, and a crash costs one message, not the intake."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from mailbox_processor import config as config_mod
from mailbox_processor import pipeline, workers
from mailbox_processor.errors import MessageError
from mailbox_processor.models import RawMail
from tests.test_ingest import citizen_mail

NOW = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)


def crash_on_uid_2(raw: RawMail, ref: str) -> workers.Result:
    """Runs in a worker: dies the way a segfault in a C library would."""
    if raw.uid == 2:
        os._exit(139)
    return workers.readable(raw, ref)


def jobs(n: int) -> list[workers.Job]:
    out = []
    for uid in range(1, n + 1):
        data = citizen_mail(uid)
        out.append((RawMail("INBOX", 1, uid, data, NOW, len(data)), f"HT-0000{uid}"))
    return out


def test_results_come_back_in_order_with_the_readable_copy(make_config) -> None:
    context = pipeline.Context.load(config_mod.load(make_config()))

    with workers.Workers(context) as pool:
        results = list(pool.results(jobs(6)))

    assert [r.submission.ref for r in results] == [f"HT-0000{i}" for i in range(1, 7)]
    assert all(isinstance(r, pipeline.Readable) for r in results)
    assert "thư 3" in results[2].submission.text


def test_a_worker_crash_quarantines_that_message_and_the_others_go_on(make_config) -> None:
    context = pipeline.Context.load(config_mod.load(make_config()))

    with workers.Workers(context, work=crash_on_uid_2) as pool:
        results = list(pool.results(jobs(5)))
        after = list(pool.results(jobs(1)))  # and the pool works again afterwards

    assert isinstance(results[1], MessageError) and results[1].kind == "crash"
    assert [r.submission.ref for i, r in enumerate(results) if i != 1] == [
        "HT-00001", "HT-00003", "HT-00004", "HT-00005"]
    assert isinstance(after[0], pipeline.Readable)


def test_workers_die_with_their_parent(make_config, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    config = make_config()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from mailbox_processor import config, pipeline, workers\n"
        "context = pipeline.Context.load(config.load(Path(sys.argv[1])))\n"
        "pool = workers.Workers(context).start()\n"
        "print(' '.join(str(p) for p in pool._pool._processes), flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(config)], stdout=subprocess.PIPE,
                              text=True)
    children = [int(p) for p in parent.stdout.readline().split()]
    assert children and all(Path(f"/proc/{p}").exists() for p in children)

    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.05)
    assert not any(_alive(p) for p in children), "orphaned workers would keep the lock file"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_time_limit_covers_the_whole_readable_copy_not_only_parsing(make_config) -> None:
    """A 24-megapixel photo parses in milliseconds but takes far longer to scrub."""
    from tests import mailfactory as mf

    config = config_mod.load(make_config(parse={"max_seconds": 0.1}))
    context = pipeline.Context.load(config)
    data = mf.citizen_mail("iphone", photo=mf.photo_jpeg((6000, 4000)))
    raw = RawMail("INBOX", 1, 1, data, NOW, len(data))

    result = pipeline.attempt(raw, "HT-00001", context)

    assert isinstance(result, MessageError) and result.kind == "timeout"
