"""`digest send` / `digest preview` end to end: a real store, the real command, a real SMTP server."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbox_processor import config as config_mod
from mailbox_processor import digest, mail, seal
from mailbox_processor.errors import MessageError
from mailbox_processor.models import Classification, Image, Submission
from mailbox_processor.store import Store, now_utc
from tests.conftest import run_cli
from tests.smtpd import SmtpServer

REF_IN_ITEM = re.compile(r"^\[(HT-[0-9A-Z]{5})\]", re.M)
_uids = itertools.count(1)


# ----- helpers shared with test_alerts.py and test_render.py --------------------------------


def add(store: Store, public_key: Path, text: str, *, category: str = "giao-thong",
        urgency: str = "thuong", location: str | None = "tdp1", flags: tuple[str, ...] = (),
        images: tuple[Image, ...] = (), withheld: tuple[str, ...] = (),
        day: dt.date = dt.date(2026, 12, 1)) -> str:
    """Record one submission the way pipeline.process does: sealed original, readable copy."""
    ref = store.new_ref()
    raw = f"From: Nguyễn Văn A <a@example.vn>\r\nSubject: {ref}\r\n\r\n{text}".encode()
    sealed = seal.seal(raw, seal.identity_of(raw), ref, seal.load_public(public_key))
    submission = Submission(ref=ref, received_on=day, location=location, text=text,
                            pseudonym="CD-000000", images=images, withheld=withheld)
    classification = Classification(category=category, urgency=urgency, confidence=0.9,
                                    flags=frozenset(flags))
    store.record_submission("INBOX", 1, next(_uids), len(raw), sealed, submission, classification)
    return ref


def quarantine(store: Store, public_key: Path) -> str:
    ref = store.new_ref()
    raw = f"Subject: {ref}\r\n\r\n\xff".encode("latin-1")
    sealed = seal.seal(raw, seal.identity_of(raw), ref, seal.load_public(public_key))
    store.record_quarantine("INBOX", 1, next(_uids), len(raw), sealed, dt.date(2026, 12, 1),
                            MessageError("parse"))
    return ref


def item_refs(msg: EmailMessage) -> list[str]:
    """Codes of the items (not of flagged mail or status changes) in a digest's text part."""
    text = msg.get_body(("plain",)).get_content()
    refs = REF_IN_ITEM.findall(text)
    for line in re.findall(r"\d+ (?:ý kiến tương tự|similar submissions): (.+)", text):
        refs += re.findall(r"HT-[0-9A-Z]{5}", line)[1:]
    return refs


def html_of(msg: EmailMessage) -> str:
    return msg.get_body(("html",)).get_content()


def text_of(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()


VARIED = [
    "Đèn đường ở ngõ 12 phố Hàng Bạc bị hỏng cả tuần, buổi tối rất tối.",
    "Rác thải tập kết ở đầu ngõ 5 không được thu gom, bốc mùi hôi thối.",
    "Quán karaoke số 18 hát đến hai giờ sáng, cả khu không ngủ được.",
    "Xin hỏi thủ tục đăng ký tạm trú cho con đi học cần những giấy tờ gì?",
    "Cống thoát nước trước trường mầm non bị tắc, mưa là ngập đến đầu gối.",
    "Vỉa hè phố Lương Văn Can bị lấn chiếm để bán hàng, người đi bộ phải xuống lòng đường.",
    "Cảm ơn cán bộ phường đã hỗ trợ gia đình tôi làm thủ tục rất nhanh.",
    "Giá điện tháng này tăng gấp đôi, đề nghị kiểm tra lại công tơ.",
]


@pytest.fixture
def env(make_config: Callable[..., Path], smtp_plain: SmtpServer,
        archive_keys: tuple[Path, Path, Path]) -> Iterator[Env]:
    e = Env(make_config, smtp_plain, archive_keys[0])
    yield e
    e.close()


class Env:
    """A config pointing at the plain SMTP server, its store, and the archive public key."""

    def __init__(self, make_config: Callable[..., Path], server: SmtpServer, public: Path) -> None:
        self.make_config = make_config
        self.server = server
        self.public = public
        self._store: Store | None = None
        self.configure()

    def configure(self, **sections: dict) -> None:
        smtp = {**self.server.smtp_config("none"), **sections.pop("smtp", {})}
        self.path = self.make_config(smtp=smtp, **sections)
        self.config = config_mod.load(self.path)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.config.store.path)
        return self._store

    def add(self, text: str, **kw: object) -> str:
        return add(self.store, self.public, text, **kw)  # type: ignore[arg-type]

    def send(self, *args: str) -> tuple[int, str, str]:
        r = run_cli(self.path, "digest", "send", *args)
        return r.returncode, r.stdout, r.stderr

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


# ----- the message -------------------------------------------------------------------------


def test_digest_is_multipart_alternative_with_text_first(env: Env) -> None:
    env.add(VARIED[0])
    code, out, err = env.send()
    assert code == 0, err
    [msg] = env.server.messages()
    assert msg.get_content_type() == "multipart/alternative"
    kinds = [p.get_content_type() for p in msg.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    assert "digest 1 sent" in out


def test_headers_are_automatic_and_carry_no_citizen_text(env: Env) -> None:
    env.add("<script>alert('x')</script> Ngõ 7 ngập {{ 7*7 }}", urgency="som")
    assert env.send()[0] == 0
    [env_] = env.server.envelopes
    msg = env_.message()
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert re.fullmatch(r"<[^<>@]+@phuong\.example\.vn>", msg["Message-ID"])
    assert msg["Subject"] == "Hòm thư số – tổng hợp ngày " + msg["Subject"].split("ngày ")[1]
    assert re.fullmatch(r"Hòm thư số – tổng hợp ngày \d\d/\d\d/\d{4}: 1 ý kiến, 0 khẩn cấp",
                        msg["Subject"])
    header_block = env_.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    for fragment in ("script", "Ngõ", "7*7", "{{"):
        assert fragment not in header_block


def test_parts_use_8bit_or_base64_never_quoted_printable(env: Env) -> None:
    env.add(VARIED[1])
    env.add("Một dòng rất dài " + "không-có-dấu-cách-" * 120)
    assert env.send()[0] == 0
    [msg] = env.server.messages()
    for part in msg.walk():
        if not part.is_multipart():
            assert part["Content-Transfer-Encoding"] in ("8bit", "base64")
    raw = env.server.envelopes[0].data
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_citizen_markup_and_template_syntax_come_out_escaped(env: Env) -> None:
    nasty = ("<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n{{ 7*7 }} {% raw %} "
             "<a href=\"https://evil.example\">bấm</a>")
    ref = env.add(nasty, urgency="khan")
    env.add(nasty + " khác", category="moi-truong")
    assert env.send()[0] == 0
    [msg] = env.server.messages()
    html = html_of(msg)
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "onerror=alert" not in html.replace("&#x3D;", "=").split("&lt;img")[0]
    assert "evil.example\">" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    # Both items' text arrives verbatim: the template never evaluates citizen text. (Checking
    # for an absent "49" would be wrong: the digest's own timestamp may contain it.)
    assert html.count("{{ 7*7 }} {% raw %}") == 2
    text = text_of(msg)
    assert "<script>alert(1)</script>" in text  # plain text is shown as written
    assert text.count("{{ 7*7 }} {% raw %}") == 2
    assert ref in text


def test_show_attachments_into_a_folder_that_cannot_be_made_is_one_line(env: Env,
                                                                         tmp_path: Path) -> None:
    ref = env.add(VARIED[0])
    (tmp_path / "file").write_text("x")
    r = run_cli(env.path, "show", ref, "--attachments", str(tmp_path / "file" / "photos"))
    assert r.returncode == 2
    assert r.stderr.startswith("error: show --attachments:") and "Traceback" not in r.stderr


def test_list_flag_picks_one_kind_of_flagged_mail(env: Env) -> None:
    petition = env.add(VARIED[0])
    auto = env.add("Tôi đang nghỉ phép đến thứ hai.", flags=("auto",))
    quarantined = quarantine(env.store, env.public)
    def refs(flag: str) -> list[str]:
        out = run_cli(env.path, "list", "--flag", flag, "--format", "json", check=True).stdout
        return [json.loads(line)["ref"] for line in out.splitlines()]
    assert refs("auto") == [auto]
    assert refs("quarantined") == [quarantined]
    assert refs("spam") == [] and petition not in refs("abuse")


def test_urgent_first_then_categories_and_flagged_apart(env: Env) -> None:
    normal = env.add(VARIED[2], category="moi-truong")
    urgent = env.add("Cháy lớn ở nhà số 5 ngõ 3, khói mù mịt!", category="an-ninh-trat-tu",
                     urgency="khan")
    spam = env.add("Mua thuốc giảm cân giá rẻ, liên hệ ngay", flags=("spam",))
    auto = env.add("Tôi đang nghỉ phép đến thứ hai.", flags=("auto",))
    quarantined = quarantine(env.store, env.public)
    assert env.send()[0] == 0
    [msg] = env.server.messages()
    text = text_of(msg)
    assert item_refs(msg) == [urgent, normal]
    assert text.index("== Khẩn cấp – cần xem ngay") < text.index("== Môi trường, vệ sinh")
    flagged = text[text.index("== Thư bị gắn cờ =="):]
    for ref in (spam, auto, quarantined):
        assert ref in flagged
        assert text.count(ref) == 1
    assert "Thư rác, quảng cáo: 1" in flagged
    assert "Thư không đọc được (cách ly, chỉ có bản niêm phong): 1" in flagged
    assert "Mua thuốc giảm cân" not in text  # flagged mail: counts and codes only
    assert "2 ý kiến · 3 thư bị gắn cờ" in text


def test_every_item_is_in_exactly_one_digest(env: Env) -> None:
    first = [env.add(t) for t in VARIED[:5]]
    assert env.send()[0] == 0
    second = [env.add(t, category="moi-truong") for t in VARIED[5:]]
    q = quarantine(env.store, env.public)
    assert env.send()[0] == 0
    assert env.send()[0] == 0  # nothing new: a short digest, no item
    msgs = env.server.messages()
    assert [item_refs(m) for m in msgs] == [first, second, []]
    assert sum(text_of(m).count(q) for m in msgs) == 1
    assert "không có ý kiến mới" in msgs[2]["Subject"]
    assert "Không có ý kiến mới trong kỳ này" in text_of(msgs[2])


def test_an_empty_period_sends_nothing_when_send_empty_is_off(env: Env) -> None:
    env.configure(digest={"send_empty": False})
    code, out, err = env.send()
    assert code == 0, err
    assert "nothing to send" in out
    assert env.server.envelopes == []


def test_near_duplicates_are_grouped_with_their_codes(env: Env) -> None:
    base = "Đoạn đường từ số 10 đến số 40 phố Hàng Bè có nhiều ổ gà rất sâu, xe máy ngã liên tục"
    a = env.add(base + ".")
    b = env.add(base + " vào buổi tối.")
    c = env.add(base + ", đề nghị phường sửa gấp.")
    other_place = env.add(base + ".", location="tdp3")
    assert env.send()[0] == 0
    [msg] = env.server.messages()
    text = text_of(msg)
    assert f"3 ý kiến tương tự: {a}, {b}, {c}" in " ".join(text.split())
    assert sorted(item_refs(msg)) == sorted([a, b, c, other_place])
    assert "3 ý kiến tương tự" in html_of(msg)


def test_status_changes_since_the_last_digest_are_shown(env: Env) -> None:
    ref = env.add(VARIED[3], category="thu-tuc-hanh-chinh")
    assert env.send()[0] == 0
    with env.store.transaction() as c:
        c.execute("INSERT INTO status_change (ref, status, note, by_user, at) VALUES (?,?,?,?,?)",
                  (ref, "answered", None, "canbo", "2026-12-01T03:00:00+00:00"))
    assert env.send()[0] == 0
    second = env.server.messages()[1]
    text = text_of(second)
    assert f"{ref} → Đã trả lời (01/12/2026 10:00)" in text  # shown in Asia/Ho_Chi_Minh
    assert env.send()[0] == 0
    assert ref not in text_of(env.server.messages()[2])


def test_counts_are_compared_with_the_previous_digest(env: Env) -> None:
    for t in VARIED[:3]:
        env.add(t)
    assert env.send()[0] == 0
    env.add(VARIED[4])
    assert env.send()[0] == 0
    text = text_of(env.server.messages()[1])
    assert "1 ý kiến (−2 so với bản trước)" in text
    assert "Giao thông, đường sá, chiếu sáng: 1 (−2)" in text


def test_items_already_alerted_are_marked_so(env: Env) -> None:
    ref = env.add("Dây điện đứt rơi xuống đường, đang tóe lửa!", category="dien-nuoc-thoat-nuoc",
                  urgency="khan")
    env.store.mark_alerted([ref])
    assert env.send()[0] == 0
    [msg] = env.server.messages()
    assert f"[{ref}] 01/12/2026 · Tổ dân phố 1 · Khẩn cấp · đã báo khẩn" in text_of(msg)
    assert "đã báo khẩn" in html_of(msg)


def test_the_english_set(env: Env) -> None:
    env.configure(digest={"language": "en"})
    env.add(VARIED[0], urgency="khan")
    assert env.send()[0] == 0
    [msg] = env.server.messages()
    assert re.fullmatch(r"Hòm thư số digest \d{4}-\d\d-\d\d: 1 new, 1 urgent", msg["Subject"])
    assert 'lang="en"' in html_of(msg)
    assert "Urgent – read now" in text_of(msg)


# ----- exactly once under failure ---------------------------------------------------------


def test_smtp_down_exits_1_marks_nothing_and_the_next_run_sends_one_digest(
    env: Env, smtp_down_port: int
) -> None:
    refs = [env.add(t) for t in VARIED[:3]]
    env.configure(smtp={"port": smtp_down_port})
    code, _out, err = env.send()
    assert code == 1
    assert err.strip().count("\n") == 0 and "connection refused" in err
    assert env.store.conn.execute("SELECT count(*) FROM digest").fetchone()[0] == 0
    assert env.store.conn.execute(
        "SELECT count(*) FROM submission WHERE digest_id IS NOT NULL").fetchone()[0] == 0
    env.configure()
    assert env.send()[0] == 0
    assert env.send()[0] == 0
    msgs = env.server.messages()
    assert [item_refs(m) for m in msgs] == [refs, []]


def test_a_refusing_server_leaves_the_digest_pending_for_the_same_message_id(env: Env) -> None:
    refs = [env.add(t) for t in VARIED[:2]]
    env.server.handler.refuse = True
    code, _out, err = env.send()
    assert code == 1 and "451" in err
    pending = env.store.pending_digest()
    assert pending is not None and pending[0] == 1
    env.server.handler.refuse = False
    code, out, _ = env.send()
    assert code == 0 and "re-sent" in out
    [msg] = env.server.messages()
    assert item_refs(msg) == refs
    assert msg["Message-ID"] == env.store.digest_info(1)[0]
    assert env.store.pending_digest() is None


def test_crash_between_send_and_mark_resends_the_same_message_id(env: Env) -> None:
    refs = [env.add(t) for t in VARIED[:4]]
    # The steps of digest.send, stopped just before the mark, as a kill -9 would.
    c = digest.claim(env.config, env.store)
    assert c is not None
    d = digest.build(env.config, env.store, c.digest_id)
    for m in digest.compose(env.config, d, c.message_id, c.created_at):
        mail.send(env.config, m.message, to=env.config.digest.to)
    later = env.add(VARIED[5])  # arrives after the crash: belongs to the next digest
    assert env.send()[0] == 0
    assert env.send()[0] == 0
    first, resent, nxt = env.server.messages()
    assert first["Message-ID"] == resent["Message-ID"] == c.message_id
    assert item_refs(first) == item_refs(resent) == refs
    assert first["Subject"] == resent["Subject"]
    assert item_refs(nxt) == [later]
    assert nxt["Message-ID"] != c.message_id


# ----- size -------------------------------------------------------------------------------------


def test_500_long_items_split_into_parts_each_under_100_kb(env: Env) -> None:
    words = ["ngập", "úng", "đường", "sá", "đèn", "rác", "thải", "tiếng", "ồn", "lấn", "chiếm",
             "vỉa", "hè", "cống", "thoát"]
    refs = []
    for i in range(500):
        text = f"Ý kiến số {i}: " + " ".join(words[(i * 7 + j * 3) % len(words)] + str(j)
                                            for j in range(260))
        refs.append(env.add(text[:1500], category=list(digest.CATEGORIES)[i % 14],
                            urgency=("khan", "som", "thuong")[i % 3] if i % 25 == 0 else "thuong",
                            location=("tdp1", "tdp3", "nvh")[i % 3]))
    code, out, err = env.send()
    assert code == 0, err
    envelopes = env.server.envelopes
    n = len(envelopes)
    assert n > 1
    seen: list[str] = []
    for k, e in enumerate(envelopes, start=1):
        assert len(e.data) < 100_000
        msg = e.message()
        assert msg["Subject"].endswith(f"(Phần {k}/{n})")
        seen += item_refs(msg)
    assert sorted(seen) == sorted(refs)
    assert len({e.message()["Message-ID"] for e in envelopes}) == n
    assert f"in {n} part(s)" in out


def _split_digest_items(env: Env) -> list[str]:
    env.configure(digest={"to": ["chutich@phuong.example.vn"], "max_bytes": 30_000})
    words = ["ngập", "úng", "đường", "sá", "đèn", "rác", "thải", "tiếng", "ồn", "lấn", "chiếm"]
    return [env.add(" ".join(words[(i * 7 + j * 3) % len(words)] + str(i * j) for j in range(150)),
                    location=("tdp1", "tdp3")[i % 2]) for i in range(40)]


def test_a_split_digest_that_failed_half_way_resumes_after_the_accepted_parts(env: Env) -> None:
    refs = _split_digest_items(env)
    env.server.handler.refuse_after = 2
    code, _out, err = env.send()
    assert code == 1 and "451" in err
    first_run = env.server.messages()
    assert len(first_run) == 2
    env.server.handler.refuse, env.server.handler.refuse_after = False, None

    code, out, err = env.send()
    assert code == 0, err
    assert "2 part(s) had been accepted already" in out
    messages = env.server.messages()
    n = len(messages)
    assert n > 3
    assert [m["Subject"].rsplit("(", 1)[1] for m in messages] == [
        f"Phần {k}/{n})" for k in range(1, n + 1)]  # each part once, in order
    assert sorted(ref for m in messages for ref in item_refs(m)) == sorted(refs)
    assert env.store.pending_digest() is None


def test_a_resend_with_a_different_split_sends_every_part_again(env: Env) -> None:
    refs = _split_digest_items(env)
    env.server.handler.refuse_after = 1
    assert env.send()[0] == 1
    env.server.handler.refuse, env.server.handler.refuse_after = False, None
    env.configure(digest={"to": ["chutich@phuong.example.vn"], "max_bytes": 45_000})

    code, out, err = env.send()
    assert code == 0, err
    again = env.server.messages()[1:]
    assert sorted(ref for m in again for ref in item_refs(m)) == sorted(refs)
    assert "re-sent after an unfinished run" in out


def test_a_spam_wave_does_not_stop_the_digest(env: Env) -> None:
    """Anyone can send the mailbox thousands of messages: the codes listed for flagged
    mail are bounded, so the digest still fits its parts and still goes out."""
    petition = env.add(VARIED[0])
    spam = [env.add(f"Mua thuốc giảm cân giá rẻ số {i}", flags=("spam",)) for i in range(6000)]
    code, _out, err = env.send()
    assert code == 0, err
    texts = [text_of(e.message()) for e in env.server.envelopes]
    assert all(len(e.data) < 100_000 for e in env.server.envelopes)
    assert petition in "".join(texts)
    flagged = texts[0][texts[0].index("== Thư bị gắn cờ =="):]
    assert "Thư rác, quảng cáo: 6000" in flagged
    assert spam[0] in flagged and spam[-1] not in flagged
    assert "và 5970 thư khác" in flagged  # 30 codes shown
    # The codes the digest leaves out are one command away.
    listed = run_cli(env.path, "list", "--flag", "spam", check=True).stdout.split()
    assert set(spam) <= set(listed) and petition not in listed


def test_a_flood_of_identical_messages_is_one_entry_with_a_bounded_list_of_codes(env: Env) -> None:
    same = [env.add("Đề nghị phường sửa ngay đèn đường ngõ 12 Hàng Bạc, tối om nguy hiểm.")
            for _ in range(3000)]
    code, _out, err = env.send()
    assert code == 0, err
    [msg] = env.server.messages()
    text = text_of(msg)
    assert "3000 ý kiến tương tự" in text
    assert sum(ref in text for ref in same) == 30 and "và 2970 ý kiến khác" in text
    assert len(env.server.envelopes[0].data) < 100_000


def test_photos_are_attached_within_the_size_budget(env: Env) -> None:
    env.configure(digest={"attach_photos": True, "max_bytes": 60_000})
    small = Image(name="anh-1.jpg", content_type="image/jpeg", data=b"\xff\xd8" + b"x" * 5000,
                  width=10, height=10)
    big = Image(name="anh-1.jpg", content_type="image/jpeg", data=b"\xff\xd8" + b"y" * 80_000,
                width=10, height=10)
    a = env.add(VARIED[0], images=(small,))
    env.add(VARIED[1], images=(big,))
    assert env.send()[0] == 0
    [e] = env.server.envelopes
    assert len(e.data) <= 60_000
    msg = e.message()
    assert msg.get_content_type() == "multipart/mixed"
    names = [p.get_filename() for p in msg.iter_attachments()]
    assert names == [f"{a}-anh-1.jpg"]
    assert "1 ảnh" in text_of(msg)


def test_photos_are_only_counted_by_default(env: Env) -> None:
    img = Image(name="anh-1.jpg", content_type="image/jpeg", data=b"\xff\xd8abc", width=1, height=1)
    env.add(VARIED[0], images=(img, img), withheld=("PDF",))
    assert env.send()[0] == 0
    [msg] = env.server.messages()
    assert msg.get_content_type() == "multipart/alternative"
    assert "2 ảnh · 1 tệp (chỉ có trong bản niêm phong)" in text_of(msg)


# ----- preview and dry run -----------------------------------------------------------------------


def test_preview_writes_html_and_text_and_marks_nothing(env: Env, tmp_path: Path) -> None:
    ref = env.add(VARIED[0])
    out = tmp_path / "xem" / "digest.html"
    r = run_cli(env.path, "digest", "preview", "--out", str(out), check=True)
    assert out.with_suffix(".txt").read_text(encoding="utf-8").count(ref) == 1
    assert ref in out.read_text(encoding="utf-8")
    assert "digest.txt" in r.stdout
    assert env.server.envelopes == []
    assert env.send()[0] == 0
    assert item_refs(env.server.messages()[0]) == [ref]


def test_dry_run_sends_and_marks_nothing(env: Env) -> None:
    ref = env.add(VARIED[0])
    code, out, _ = env.send("--dry-run")
    assert code == 0 and "dry run: would send 1 items in 1 part(s)" in out
    assert env.server.envelopes == []
    assert env.store.conn.execute("SELECT count(*) FROM digest").fetchone()[0] == 0
    assert env.send()[0] == 0
    assert item_refs(env.server.messages()[0]) == [ref]


def test_over_starttls_with_auth(make_config: Callable[..., Path], smtp_starttls: SmtpServer,
                                 archive_keys: tuple[Path, Path, Path], tmp_path: Path) -> None:
    path = make_config(smtp={**smtp_starttls.smtp_config("starttls", tmp_path / "pw"),
                             "from": "Hòm thư số <hopthu@phuong.example.vn>"})
    cfg = config_mod.load(path)
    store = Store.open(cfg.store.path)
    ref = add(store, archive_keys[0], VARIED[0])
    store.close()
    run_cli(path, "digest", "send", check=True)
    [msg] = smtp_starttls.messages()
    assert item_refs(msg) == [ref]


def test_period_runs_from_the_previous_digest(env: Env) -> None:
    env.add(VARIED[0])
    assert env.send()[0] == 0
    assert "Đến " in text_of(env.server.messages()[0])
    env.add(VARIED[1])
    assert env.send()[0] == 0
    assert re.search(r"Từ \d\d/\d\d/\d{4} \d\d:\d\d đến \d\d/\d\d/\d{4} \d\d:\d\d",
                     text_of(env.server.messages()[1]))


def test_local_time_is_shown_in_the_mailbox_time_zone() -> None:
    assert digest.local_time("2026-12-01T00:30:00+00:00", "Asia/Ho_Chi_Minh", "vi") == \
        "01/12/2026 07:30"
    assert now_utc().endswith("+00:00")
