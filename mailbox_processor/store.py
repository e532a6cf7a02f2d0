"""The SQLite store: submissions, quarantine, sealed blobs and mailbox state.

One transaction per message holds everything about it together with the
mailbox state, so a crash at any moment leaves either all of it or none.
Readable columns hold only the anonymised copy; the sealed originals live in
their own table so retention can drop them and leak tests can skip them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, MessageError, TransientError
from .models import Classification, Image, Sealed, Submission

# Crockford's base32 without I, L, O, U: codes that survive being read aloud or copied by hand.
REF_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REF_PREFIX = "HT-"

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema.
    """
    CREATE TABLE message (
        ref          TEXT PRIMARY KEY,
        sha256       TEXT NOT NULL UNIQUE,
        received_on  TEXT NOT NULL,            -- date only, in the mailbox's time zone
        size         INTEGER NOT NULL,
        quarantined  INTEGER NOT NULL DEFAULT 0,
        error_kind   TEXT                      -- why it is in quarantine
    );
    -- Every (folder, UIDVALIDITY, UID) under which a message was seen: the
    -- exactly-once key; a message copied back to the inbox maps to its ref.
    CREATE TABLE mailbox_uid (
        folder       TEXT NOT NULL,
        uidvalidity  INTEGER NOT NULL,
        uid          INTEGER NOT NULL,
        ref          TEXT NOT NULL REFERENCES message(ref),
        PRIMARY KEY (folder, uidvalidity, uid)
    );
    CREATE TABLE mailbox_state (
        folder       TEXT PRIMARY KEY,
        uidvalidity  INTEGER NOT NULL,
        last_uid     INTEGER NOT NULL
    );
    CREATE TABLE sealed (
        ref          TEXT PRIMARY KEY REFERENCES message(ref),
        blob         BLOB NOT NULL
    );
    CREATE TABLE submission (
        ref          TEXT PRIMARY KEY REFERENCES message(ref),
        location     TEXT,
        text         TEXT NOT NULL,
        pseudonym    TEXT NOT NULL,
        withheld     TEXT NOT NULL DEFAULT '[]',   -- JSON list of attachment kinds
        automatic    INTEGER NOT NULL DEFAULT 0,
        category     TEXT NOT NULL,
        urgency      TEXT NOT NULL,
        confidence   REAL NOT NULL,
        flags        TEXT NOT NULL DEFAULT '[]',   -- JSON list
        cues         TEXT NOT NULL DEFAULT '[]',   -- JSON list
        status       TEXT NOT NULL DEFAULT 'new',
        digest_id    INTEGER REFERENCES digest(id),
        alerted      INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX submission_digest ON submission(digest_id);
    CREATE TABLE image (
        ref          TEXT NOT NULL REFERENCES submission(ref),
        n            INTEGER NOT NULL,
        name         TEXT NOT NULL,
        content_type TEXT NOT NULL,
        width        INTEGER NOT NULL,
        height       INTEGER NOT NULL,
        data         BLOB NOT NULL,
        PRIMARY KEY (ref, n)
    );
    CREATE TABLE digest (
        id           INTEGER PRIMARY KEY,
        message_id   TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        sent_at      TEXT,
        status       TEXT NOT NULL DEFAULT 'pending'
    );
    -- Staff corrections of the classifier; the newest per ref wins.
    CREATE TABLE label (
        id           INTEGER PRIMARY KEY,
        ref          TEXT NOT NULL REFERENCES submission(ref),
        category     TEXT NOT NULL,
        urgency      TEXT,
        by_user      TEXT NOT NULL,
        at           TEXT NOT NULL
    );
    CREATE TABLE status_change (
        id           INTEGER PRIMARY KEY,
        ref          TEXT NOT NULL REFERENCES submission(ref),
        status       TEXT NOT NULL,
        note         TEXT,
        by_user      TEXT NOT NULL,
        at           TEXT NOT NULL,
        digest_id    INTEGER REFERENCES digest(id)
    );
    -- Who opened a seal, when, and for what. Never the address itself.
    CREATE TABLE audit (
        id           INTEGER PRIMARY KEY,
        at           TEXT NOT NULL,
        by_user      TEXT NOT NULL,
        action       TEXT NOT NULL,
        ref          TEXT NOT NULL
    );
    """,
    # 2 (issue 5): quarantined mail has no submission row; the digest that reported
    # it owns it here, so each quarantined message is counted in exactly one digest.
    """
    ALTER TABLE message ADD COLUMN digest_id INTEGER REFERENCES digest(id);
    """,
    # 3 (issue 7): acknowledgements counted by pseudonym (never an address), replies
    # sent, and when retention purged a message's seal.
    """
    CREATE TABLE acknowledgement (
        ref          TEXT PRIMARY KEY REFERENCES message(ref),
        pseudonym    TEXT NOT NULL,            -- of the address it went to
        sent_at      TEXT NOT NULL
    );
    CREATE INDEX acknowledgement_pseudonym ON acknowledgement(pseudonym, sent_at);
    CREATE TABLE reply (
        id           INTEGER PRIMARY KEY,
        ref          TEXT NOT NULL REFERENCES message(ref),
        message_id   TEXT NOT NULL,            -- ours, on the mailbox's domain
        by_user      TEXT NOT NULL,
        at           TEXT NOT NULL
    );
    ALTER TABLE message ADD COLUMN purged_at TEXT;
    """,
    # 4: the (UTC) date a message was stored. Retention counts from the later of it and
    # the received date: mail imported into the mailbox keeps an old INTERNALDATE.
    """
    ALTER TABLE message ADD COLUMN stored_on TEXT;
    """,
    # 5: how far a split digest got, so a re-send skips the parts the server accepted
    # (only while the split, identified by parts_key, is the same).
    """
    ALTER TABLE digest ADD COLUMN parts_key TEXT;
    ALTER TABLE digest ADD COLUMN parts_sent INTEGER NOT NULL DEFAULT 0;
    """,
)

# What retention may drop: received *and* stored before :day, and already reported in
# a digest the SMTP server accepted (never an item leaders have not seen yet).
PURGEABLE = (
    "SELECT m.ref FROM message m LEFT JOIN submission s USING (ref) "
    "JOIN digest d ON d.id = coalesce(s.digest_id, m.digest_id) "
    "WHERE m.received_on < :day AND coalesce(m.stored_on, m.received_on) < :day "
    "AND d.status = 'sent'"
)


@dataclass(frozen=True)
class Row:
    """One stored message as `list` and `show` present it (the anonymised side only)."""

    ref: str
    date: str
    location: str | None
    category: str | None
    urgency: str | None
    status: str | None
    flags: tuple[str, ...]
    quarantined: bool
    error_kind: str | None
    text: str | None
    images: tuple[tuple[str, str, int, int], ...]  # name, content type, width, height
    withheld: tuple[str, ...]
    confidence: float | None
    cues: tuple[str, ...]

    def as_json(self, full: bool = False) -> dict[str, object]:
        d: dict[str, object] = {
            "ref": self.ref,
            "date": self.date,
            "location": self.location,
            "category": self.category,
            "urgency": self.urgency,
            "status": self.status,
            "flags": list(self.flags),
            "quarantined": self.quarantined,
        }
        if self.quarantined:
            d["error"] = self.error_kind
        if full:
            d["text"] = self.text
            d["attachments"] = [
                {"name": n, "content_type": t, "width": w, "height": h}
                for n, t, w, h in self.images
            ] + [{"withheld": kind} for kind in self.withheld]
            d["confidence"] = self.confidence
            d["cues"] = list(self.cues)
        return d


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Store:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> Store:
        path = Path(path)
        try:
            if not path.parent.exists():
                path.parent.mkdir(mode=0o700, parents=True)
            # The file is created 0600 before SQLite touches it: it holds the seals.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"store.path {path}: cannot open the store: {e}") from None
        store = cls(conn, path)
        store._migrate()
        return store

    def close(self) -> None:
        self.conn.close()

    def make_durable(self) -> None:
        """Put what is committed on disk, so that it survives a power cut.

        synchronous=NORMAL spares each per-message commit an fsync, which WAL mode
        makes safe against crashes of the program but not of the machine. A message
        may leave the inbox only once its commit would survive both, so this runs
        once per batch, just before the move: an fsync of the WAL (SQLite replays
        its committed frames on opening) and of the folder that holds it.
        """
        wal = self.path.with_name(self.path.name + "-wal")
        for target in (wal, self.path.parent):
            try:
                fd = os.open(target, os.O_RDONLY)
            except FileNotFoundError:
                continue  # no WAL: the last connection checkpointed it into the file
            try:
                os.fsync(fd)
            except OSError as e:
                raise TransientError(f"store.path {self.path}: cannot sync: {e.strerror}") \
                    from None
            finally:
                os.close(fd)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise ConfigError(
                f"store.path {self.path}: written by a newer version (schema {version}); "
                "upgrade mailbox-processor"
            )
        for n, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits on its own; user_version is set inside the same script.
            self.conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {n};\nCOMMIT;")

    # ----- intake ---------------------------------------------------------------

    def new_ref(self, taken: Collection[str] = ()) -> str:
        """A random unused code; `taken` are codes handed out but not yet committed."""
        while True:
            ref = REF_PREFIX + "".join(secrets.choice(REF_ALPHABET) for _ in range(5))
            if ref in taken:
                continue
            if not self.conn.execute("SELECT 1 FROM message WHERE ref=?", (ref,)).fetchone():
                return ref

    def state(self, folder: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, last UID) recorded for a folder, or None."""
        row = self.conn.execute(
            "SELECT uidvalidity, last_uid FROM mailbox_state WHERE folder=?", (folder,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def known(self, folder: str, uidvalidity: int, uid: int) -> tuple[str, bool] | None:
        """(ref, quarantined) of a message already committed under this UID, or None."""
        row = self.conn.execute(
            "SELECT m.ref, m.quarantined FROM mailbox_uid u JOIN message m USING (ref) "
            "WHERE u.folder=? AND u.uidvalidity=? AND u.uid=?",
            (folder, uidvalidity, uid),
        ).fetchone()
        return (row[0], bool(row[1])) if row else None

    def by_hash(self, sha256: str) -> tuple[str, bool] | None:
        row = self.conn.execute(
            "SELECT ref, quarantined FROM message WHERE sha256=?", (sha256,)
        ).fetchone()
        return (row[0], bool(row[1])) if row else None

    def _seen(self, c: sqlite3.Connection, folder: str, uidvalidity: int, uid: int, ref: str) -> None:
        c.execute(
            "INSERT OR IGNORE INTO mailbox_uid (folder, uidvalidity, uid, ref) VALUES (?,?,?,?)",
            (folder, uidvalidity, uid, ref),
        )
        c.execute(
            "INSERT INTO mailbox_state (folder, uidvalidity, last_uid) VALUES (?,?,?) "
            "ON CONFLICT(folder) DO UPDATE SET uidvalidity=excluded.uidvalidity, "
            "last_uid=max(CASE WHEN mailbox_state.uidvalidity=excluded.uidvalidity "
            "THEN mailbox_state.last_uid ELSE 0 END, excluded.last_uid)",
            (folder, uidvalidity, uid),
        )

    def record_duplicate(self, folder: str, uidvalidity: int, uid: int, ref: str) -> None:
        with self.transaction() as c:
            self._seen(c, folder, uidvalidity, uid, ref)

    def record_submission(
        self,
        folder: str,
        uidvalidity: int,
        uid: int,
        size: int,
        sealed: Sealed,
        submission: Submission,
        classification: Classification,
    ) -> None:
        s, k = submission, classification
        with self.transaction() as c:
            self._message(c, sealed, s.received_on.isoformat(), size, None)
            c.execute(
                "INSERT INTO submission (ref, location, text, pseudonym, withheld, automatic, "
                "category, urgency, confidence, flags, cues) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    s.ref, s.location, s.text, s.pseudonym, json.dumps(list(s.withheld)),
                    int(s.automatic), k.category, k.urgency, k.confidence,
                    json.dumps(sorted(k.flags)), json.dumps(list(k.cues), ensure_ascii=False),
                ),
            )
            for n, img in enumerate(s.images, start=1):
                c.execute(
                    "INSERT INTO image (ref, n, name, content_type, width, height, data) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (s.ref, n, img.name, img.content_type, img.width, img.height, img.data),
                )
            self._seen(c, folder, uidvalidity, uid, s.ref)

    def record_quarantine(
        self,
        folder: str,
        uidvalidity: int,
        uid: int,
        size: int,
        sealed: Sealed,
        received_on: dt.date,
        error: MessageError,
    ) -> None:
        with self.transaction() as c:
            self._message(c, sealed, received_on.isoformat(), size, error.kind)
            self._seen(c, folder, uidvalidity, uid, sealed.ref)

    def _message(
        self, c: sqlite3.Connection, sealed: Sealed, day: str, size: int, error: str | None
    ) -> None:
        c.execute(
            "INSERT INTO message (ref, sha256, received_on, stored_on, size, quarantined, "
            "error_kind) VALUES (?,?,?,?,?,?,?)",
            (sealed.ref, sealed.sha256, day, now_utc()[:10], size, int(error is not None), error),
        )
        c.execute("INSERT INTO sealed (ref, blob) VALUES (?,?)", (sealed.ref, sealed.blob))

    # ----- reading --------------------------------------------------------------

    _ROW_SQL = (
        "SELECT m.ref, m.received_on, s.location, "
        "coalesce((SELECT l.category FROM label l WHERE l.ref=m.ref ORDER BY l.id DESC LIMIT 1),"
        " s.category), "
        "coalesce((SELECT l.urgency FROM label l WHERE l.ref=m.ref AND l.urgency IS NOT NULL "
        "ORDER BY l.id DESC LIMIT 1), s.urgency), "
        "s.status, s.flags, m.quarantined, m.error_kind, s.text, s.withheld, s.confidence, s.cues "
        "FROM message m LEFT JOIN submission s USING (ref) "
    )

    def rows(self, status: str | None = None) -> list[Row]:
        sql, args = self._ROW_SQL, ()
        if status:
            sql, args = sql + "WHERE s.status=? ", (status,)
        return [self._row(r) for r in self.conn.execute(sql + "ORDER BY m.rowid", args)]

    def row(self, ref: str) -> Row | None:
        r = self.conn.execute(self._ROW_SQL + "WHERE m.ref=?", (ref.upper(),)).fetchone()
        return self._row(r) if r else None

    def _row(self, r: tuple) -> Row:
        ref = r[0]
        images = tuple(
            self.conn.execute(
                "SELECT name, content_type, width, height FROM image WHERE ref=? ORDER BY n",
                (ref,),
            )
        )
        return Row(
            ref=ref,
            date=r[1],
            location=r[2],
            category=r[3],
            urgency=r[4],
            status=r[5],
            flags=tuple(json.loads(r[6])) if r[6] else (),
            quarantined=bool(r[7]),
            error_kind=r[8],
            text=r[9],
            images=images,
            withheld=tuple(json.loads(r[10])) if r[10] else (),
            confidence=r[11],
            cues=tuple(json.loads(r[12])) if r[12] else (),
        )

    def images(self, ref: str) -> list[Image]:
        return [
            Image(name=n, content_type=t, width=w, height=h, data=d)
            for n, t, w, h, d in self.conn.execute(
                "SELECT name, content_type, width, height, data FROM image WHERE ref=? ORDER BY n",
                (ref.upper(),),
            )
        ]

    def sealed_blob(self, ref: str) -> bytes | None:
        row = self.conn.execute("SELECT blob FROM sealed WHERE ref=?", (ref.upper(),)).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        q = self.conn.execute(
            "SELECT count(*), coalesce(sum(quarantined), 0) FROM message"
        ).fetchone()
        return {"messages": q[0], "quarantined": q[1]}

    def audit(self, by_user: str, action: str, ref: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO audit (at, by_user, action, ref) VALUES (?,?,?,?)",
                (now_utc(), by_user, action, ref),
            )

    # ===== labels and exports (issue 4) =====

    def add_label(self, ref: str, category: str, urgency: str | None, by_user: str) -> None:
        """Record a staff correction; the newest one per ref wins in rows()."""
        ref = ref.upper()
        with self.transaction() as c:
            if not c.execute("SELECT 1 FROM submission WHERE ref=?", (ref,)).fetchone():
                raise ConfigError(f"{ref}: no such submission in the store "
                                  "(unknown, or quarantined mail, which has no readable copy)")
            c.execute(
                "INSERT INTO label (ref, category, urgency, by_user, at) VALUES (?,?,?,?,?)",
                (ref, category, urgency, by_user, now_utc()),
            )

    def labelled_refs(self) -> set[str]:
        """Refs whose labels a member of staff has corrected."""
        return {r[0] for r in self.conn.execute("SELECT DISTINCT ref FROM label")}

    # ===== digests and alerts (issue 5) =====

    def pending_digest(self) -> tuple[int, str] | None:
        """(id, Message-ID) of a digest claimed but not yet accepted by the SMTP server."""
        row = self.conn.execute(
            "SELECT id, message_id FROM digest WHERE status='pending' ORDER BY id LIMIT 1"
        ).fetchone()
        return (row[0], row[1]) if row else None

    def claim_digest(self, message_id: str, *, empty_ok: bool) -> int | None:
        """A new pending digest owning every undigested submission, status change and
        quarantined message, in one transaction; None when there is nothing and not empty_ok.

        Ownership by id instead of a time window: an item is in exactly one digest.
        """
        with self.transaction() as c:
            waiting = c.execute(
                "SELECT (SELECT count(*) FROM submission WHERE digest_id IS NULL)"
                " + (SELECT count(*) FROM message WHERE quarantined=1 AND digest_id IS NULL)"
                " + (SELECT count(*) FROM status_change WHERE digest_id IS NULL)"
            ).fetchone()[0]
            if not waiting and not empty_ok:
                return None
            cur = c.execute(
                "INSERT INTO digest (message_id, created_at, status) VALUES (?,?, 'pending')",
                (message_id, now_utc()),
            )
            digest_id = cur.lastrowid
            c.execute("UPDATE submission SET digest_id=? WHERE digest_id IS NULL", (digest_id,))
            c.execute(
                "UPDATE message SET digest_id=? WHERE quarantined=1 AND digest_id IS NULL",
                (digest_id,),
            )
            c.execute("UPDATE status_change SET digest_id=? WHERE digest_id IS NULL", (digest_id,))
        return digest_id

    def digest_parts_sent(self, digest_id: int, parts_key: str) -> int:
        """How many leading parts of this split the server already accepted (0 for another
        split: then every part goes again, under the same Message-IDs)."""
        row = self.conn.execute(
            "SELECT parts_sent FROM digest WHERE id=? AND parts_key=?", (digest_id, parts_key)
        ).fetchone()
        return row[0] if row else 0

    def mark_digest_part_sent(self, digest_id: int, parts_key: str, n: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE digest SET parts_key=?, parts_sent=? WHERE id=?",
                      (parts_key, n, digest_id))

    def mark_digest_sent(self, digest_id: int) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE digest SET status='sent', sent_at=? WHERE id=? AND status='pending'",
                (now_utc(), digest_id),
            )

    def digest_info(self, digest_id: int) -> tuple[str, str, str | None]:
        """(Message-ID, created_at UTC, status) of one digest."""
        row = self.conn.execute(
            "SELECT message_id, created_at, status FROM digest WHERE id=?", (digest_id,)
        ).fetchone()
        return (row[0], row[1], row[2])

    def previous_digest(self, before: int | None) -> tuple[int, str] | None:
        """(id, created_at UTC) of the last sent digest before `before` (None: the newest)."""
        row = self.conn.execute(
            "SELECT id, created_at FROM digest WHERE status='sent' AND (? IS NULL OR id < ?) "
            "ORDER BY id DESC LIMIT 1",
            (before, before),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def digest_rows(self, digest_id: int | None) -> list[tuple[Row, bool]]:
        """(row, alerted) of the submissions a digest owns; None: those not yet in one."""
        where = "s.digest_id IS NULL" if digest_id is None else "s.digest_id=?"
        args: tuple = () if digest_id is None else (digest_id,)
        sql = self._ROW_SQL + f"WHERE s.ref IS NOT NULL AND {where} ORDER BY m.rowid"
        rows = [self._row(r) for r in self.conn.execute(sql, args)]
        alerted = {
            r[0]
            for r in self.conn.execute(
                f"SELECT s.ref FROM submission s WHERE s.alerted=1 AND {where}", args
            )
        }
        return [(r, r.ref in alerted) for r in rows]

    def digest_quarantined(self, digest_id: int | None) -> list[tuple[str, str | None]]:
        """(ref, error kind) of quarantined mail a digest owns; None: not yet reported."""
        where = "digest_id IS NULL" if digest_id is None else "digest_id=?"
        args: tuple = () if digest_id is None else (digest_id,)
        return list(
            self.conn.execute(
                f"SELECT ref, error_kind FROM message WHERE quarantined=1 AND {where} "
                "ORDER BY rowid",
                args,
            )
        )

    def digest_changes(self, digest_id: int | None) -> list[tuple[str, str, str]]:
        """(ref, new status, at UTC) of status changes a digest owns; None: not yet reported."""
        where = "digest_id IS NULL" if digest_id is None else "digest_id=?"
        args: tuple = () if digest_id is None else (digest_id,)
        return list(
            self.conn.execute(
                f"SELECT ref, status, at FROM status_change WHERE {where} ORDER BY id", args
            )
        )

    def digest_counts(self, digest_id: int) -> dict[str, int]:
        """Items of a digest by category and by urgency ("urgency:khan"), for comparisons."""
        counts: dict[str, int] = {}
        for row, _alerted in self.digest_rows(digest_id):
            if row.flags:
                continue
            counts[row.category or ""] = counts.get(row.category or "", 0) + 1
            key = f"urgency:{row.urgency}"
            counts[key] = counts.get(key, 0) + 1
            counts["total"] = counts.get("total", 0) + 1
        return counts

    def unalerted_urgent(self, limit: int = 100) -> list[Row]:
        """Urgent submissions (after staff corrections) not yet in an alert, oldest first.

        Spam, automatic and empty mail never alerts, whatever words it contains; nor does
        an item already in a digest (alerts switched on late must not replay months).
        """
        refs = [
            r[0]
            for r in self.conn.execute(
                "SELECT s.ref FROM submission s WHERE s.alerted=0 AND s.digest_id IS NULL "
                "AND coalesce("
                "(SELECT l.urgency FROM label l WHERE l.ref=s.ref AND l.urgency IS NOT NULL "
                "ORDER BY l.id DESC LIMIT 1), s.urgency)='khan' AND NOT EXISTS "
                "(SELECT 1 FROM json_each(s.flags) WHERE value IN ('spam','auto','empty')) "
                "ORDER BY s.rowid LIMIT ?",
                (limit,),
            )
        ]
        return [row for ref in refs if (row := self.row(ref)) is not None]

    def mark_alerted(self, refs: list[str]) -> None:
        with self.transaction() as c:
            c.executemany("UPDATE submission SET alerted=1 WHERE ref=?", [(r,) for r in refs])


    # ===== status, replies, acknowledgements, retention (issue 7) =====

    def acks_since(self, pseudonym: str, since: str) -> int:
        """Acknowledgements sent to one pseudonym at or after `since` (UTC ISO)."""
        return self.conn.execute(
            "SELECT count(*) FROM acknowledgement WHERE pseudonym=? AND sent_at>=?",
            (pseudonym, since),
        ).fetchone()[0]

    def acknowledged(self, ref: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM acknowledgement WHERE ref=?", (ref,)
        ).fetchone() is not None

    def record_ack(self, ref: str, pseudonym: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO acknowledgement (ref, pseudonym, sent_at) VALUES (?,?,?)",
                (ref, pseudonym, now_utc()),
            )

    def set_status(self, ref: str, status: str, note: str | None, by_user: str) -> None:
        """A new status for a submission, with its history row (the digest reports it)."""
        with self.transaction() as c:
            self._set_status(c, ref.upper(), status, note, by_user)

    def _set_status(
        self, c: sqlite3.Connection, ref: str, status: str, note: str | None, by_user: str
    ) -> None:
        if not c.execute("SELECT 1 FROM submission WHERE ref=?", (ref,)).fetchone():
            raise ConfigError(f"{ref}: no readable submission with this reference code "
                              "(unknown, quarantined or purged)")
        c.execute("UPDATE submission SET status=? WHERE ref=?", (status, ref))
        c.execute(
            "INSERT INTO status_change (ref, status, note, by_user, at) VALUES (?,?,?,?,?)",
            (ref, status, note, by_user, now_utc()),
        )

    def record_reply(self, ref: str, message_id: str, by_user: str) -> None:
        """A reply went out: its row, the audit entry and (for a submission) status answered."""
        ref = ref.upper()
        with self.transaction() as c:
            at = now_utc()
            c.execute("INSERT INTO reply (ref, message_id, by_user, at) VALUES (?,?,?,?)",
                      (ref, message_id, by_user, at))
            c.execute("INSERT INTO audit (at, by_user, action, ref) VALUES (?,?,?,?)",
                      (at, by_user, "reply", ref))
            if c.execute("SELECT 1 FROM submission WHERE ref=?", (ref,)).fetchone():
                self._set_status(c, ref, "answered", "reply sent", by_user)

    def replies(self, ref: str) -> list[tuple[str, str, str]]:
        """(Message-ID, by user, at UTC) of every reply sent for a reference code."""
        return list(self.conn.execute(
            "SELECT message_id, by_user, at FROM reply WHERE ref=? ORDER BY id", (ref.upper(),)
        ))

    def rows_since(self, since: dt.date | None) -> list[Row]:
        """Readable rows received on or after `since` (every row when None), oldest first."""
        sql, args = self._ROW_SQL, ()
        if since is not None:
            sql, args = sql + "WHERE m.received_on>=? ", (since.isoformat(),)
        return [self._row(r) for r in self.conn.execute(sql + "ORDER BY m.rowid", args)]

    def hashes_before(self, cutoff: dt.date) -> dict[str, str]:
        """sha256 → ref of every message retention may drop at `cutoff`, purged already or
        not, so an IMAP copy left behind by an interrupted purge is still found next time."""
        return dict(self.conn.execute(
            f"SELECT sha256, ref FROM message WHERE ref IN ({PURGEABLE})",
            {"day": cutoff.isoformat()},
        ).fetchall())

    def purge(self, cutoff: dt.date, everything: bool) -> list[str]:
        """Drop the seals of messages that retention may drop; refs whose seal went now.

        The message row stays as a tombstone (ref, content hash, date): a copy that
        turns up again (a provider's "All Mail", a restore) is still known, not new,
        and its IMAP copy can still be found by hash. With `everything` the readable
        copy and the tombstone go too: nothing about those messages is left.
        """
        with self.transaction() as c:
            # Chosen once: deleting submissions would change what the query selects.
            doomed = json.dumps([r[0] for r in c.execute(PURGEABLE, {"day": cutoff.isoformat()})])
            these = "(SELECT value FROM json_each(?))"
            refs = [r[0] for r in c.execute(
                f"SELECT ref FROM sealed WHERE ref IN {these} ORDER BY rowid", (doomed,)
            )]
            c.execute(f"DELETE FROM sealed WHERE ref IN {these}", (doomed,))
            c.execute(f"UPDATE message SET purged_at=? WHERE purged_at IS NULL AND ref IN {these}",
                      (now_utc(), doomed))
            if everything:
                for table in ("image", "label", "status_change", "submission", "acknowledgement",
                              "reply", "mailbox_uid", "message"):
                    c.execute(f"DELETE FROM {table} WHERE ref IN {these}", (doomed,))
        return refs
