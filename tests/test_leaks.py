"""Promise 2 end to end: planted identifiers never reach anything readable.

Each phone client's mail goes through the real pipeline into a real SQLite
file; then the store's bytes outside the sealed table, the `show` output of
the real CLI, the scrubbed photos it writes and every log record at DEBUG are
searched for every planted identifier.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from mailbox_processor import config, pipeline
from mailbox_processor.models import RawMail
from mailbox_processor.store import Store
from tests import mailfactory as mf
from tests.conftest import run_cli

RECEIVED = dt.datetime(2026, 11, 20, 1, 15, 3, tzinfo=dt.UTC)
OTHER_NAME = "Don_de_nghi_Nguyen_Van_Binh.pdf"


def needles() -> list[str]:
    return [*mf.PLANTED.strings(), OTHER_NAME, OTHER_NAME.rsplit(".", 1)[0], "08:15",
            "+0700", mf.PLANTED.make + "\x00"]


def leaks(haystack: bytes | str) -> list[str]:
    """Planted strings found, in UTF-8 and (for SQLite's sake) UTF-16 too."""
    if isinstance(haystack, str):
        return [n for n in needles() if n.lower() in haystack.lower()]
    low = haystack.lower()
    return [n for n in needles()
            if n.lower().encode() in low or n.lower().encode("utf-16-le") in low]


def corpus_of_messages() -> list[bytes]:
    """One message per client, each with a photo, plus quoting, HTML and extra files."""
    photo = mf.photo_jpeg()
    messages = []
    for n, client in enumerate(mf.CLIENTS):
        attachments: tuple[tuple[str, str, bytes], ...] = ()
        if n % 2 == 0:
            attachments = (("application/pdf", OTHER_NAME, b"%PDF-1.4 " + mf.PLANTED.name.encode()),)
        if client == "samsung":
            attachments += (("image/png", "Screenshot_20261120-081502.png", mf.photo_png_alpha()),)
        messages.append(mf.citizen_mail(
            client, photo=photo, attachments=attachments,
            quoted=f"Thư trước của {mf.PLANTED.name}, {mf.PLANTED.phone}",
        ))
    return messages


@pytest.fixture
def filled_store(make_config, caplog: pytest.LogCaptureFixture) -> tuple[Path, Path, list[str]]:
    """(config path, store path, refs) after the real pipeline stored every client's mail."""
    caplog.set_level(logging.DEBUG)
    config_path = make_config()
    cfg = config.load(config_path)
    ctx = pipeline.Context.load(cfg)
    store = Store.open(cfg.store.path)
    refs = []
    for uid, raw in enumerate(corpus_of_messages(), start=1):
        assert len(leaks(raw)) >= 10  # the input really carries what must not come out
        out = pipeline.process(
            RawMail(folder="INBOX", uidvalidity=7, uid=uid, data=raw, received=RECEIVED,
                    size=len(raw)),
            store, ctx,
        )
        assert not out.quarantined and not out.duplicate
        refs.append(out.ref)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return config_path, Path(cfg.store.path), refs


def test_nothing_planted_in_the_stores_readable_bytes(filled_store, tmp_path: Path) -> None:
    _config_path, db, refs = filled_store
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL was not checkpointed"
    copy = tmp_path / "readable.sqlite3"
    shutil.copy(db, copy)
    conn = sqlite3.connect(copy)
    # The fixture really stored things: text, photos and withheld kinds.
    rows = conn.execute("SELECT text, withheld FROM submission").fetchall()
    assert len(rows) == len(refs)
    assert all("Đèn đường ở ngõ 12" in text for text, _ in rows)
    assert conn.execute("SELECT count(*) FROM image").fetchone()[0] == len(refs) + 1
    assert any("PDF" in json.loads(w) for _, w in rows)
    conn.execute("DELETE FROM sealed")
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    assert leaks(copy.read_bytes()) == []
    # The seals are encrypted: even the full file, seals included, shows nothing.
    assert leaks(db.read_bytes()) == []


def test_nothing_planted_in_show_output_or_written_photos(filled_store, tmp_path: Path) -> None:
    config_path, _db, refs = filled_store
    out_dir = tmp_path / "photos"
    for ref in refs:
        shown = run_cli(config_path, "show", ref, "--attachments", str(out_dir), check=True)
        assert "Đèn đường ở ngõ 12" in shown.stdout
        assert "[tên]" in shown.stdout and "[số điện thoại]" in shown.stdout
        assert leaks(shown.stdout + shown.stderr) == []
        as_json = run_cli(config_path, "show", ref, "--format", "json", check=True)
        assert leaks(as_json.stdout) == []
        assert json.loads(as_json.stdout)["location"] == "tdp3"
    shown = [run_cli(config_path, "show", ref, check=True).stdout for ref in refs[:1]]
    assert "1 tệp PDF — chỉ có trong bản niêm phong" in shown[0]
    photos = sorted(out_dir.iterdir())
    assert len(photos) == len(refs) + 1
    for photo in photos:
        data = photo.read_bytes()
        assert leaks(photo.name) == [] and leaks(data) == []
        assert b"Exif" not in data and b"http://ns.adobe.com/xap" not in data
        if photo.suffix == ".jpg":
            markers = mf.jpeg_markers(data)
            assert not any(0xE1 <= m <= 0xEF or m == 0xFE for m in markers)  # APP1…APP15, COM
        else:
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and b"iCCP" not in data and b"tEXt" not in data


def test_nothing_planted_in_logs_at_debug(filled_store, caplog: pytest.LogCaptureFixture) -> None:
    _config_path, _db, refs = filled_store
    records = caplog.get_records("setup") + caplog.records  # the pipeline ran in the fixture
    assert records, "nothing was logged: the test would prove nothing"
    assert any(r.levelno == logging.DEBUG for r in records)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)
    assert all(ref in text for ref in refs)
    assert leaks(text) == []


def test_quarantined_mail_leaks_nothing_either(make_config, caplog, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = config.load(make_config(parse={"max_depth": 0}))
    ctx = pipeline.Context.load(cfg)
    store = Store.open(cfg.store.path)
    raw = mf.citizen_mail("iphone", photo=mf.photo_jpeg())
    out = pipeline.process(RawMail("INBOX", 7, 1, raw, RECEIVED, len(raw)), store, ctx)
    assert out.quarantined
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    assert leaks(Path(cfg.store.path).read_bytes()) == []
    assert leaks("\n".join(r.getMessage() for r in caplog.records)) == []
