"""The digest: what leaders read on their phones, built from the store and sent exactly once.

Three steps, each a plain function:

    claim()    a digest row that owns every item not yet in a digest (or the pending one)
    build()    Digest, a frozen snapshot of those items, grouped and counted
    compose()  Vietnamese (or English) HTML + text, CSS inlined, split under the size budget

`send()` runs them and marks the digest sent only after the SMTP server
accepted every part. A crash in between leaves the row pending, and the next
run re-sends the same items under the same Message-ID: ownership by digest id,
not a time window, is what makes "exactly one digest per item" hold. Each
accepted part is recorded, so a split digest that failed half-way resumes
after the parts already delivered (when the new split is the same).

Every string in the templates that comes from a submission is untrusted: the
HTML templates are autoescaped (by their .html extension) and no citizen text
ever reaches a header.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.policy
import functools
import hashlib
import importlib.resources
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import css_inline
import jinja2
from markupsafe import Markup, escape

from . import mail
from .config import Config
from .errors import ConfigError
from .models import FLAGS, Image
from .store import Row, Store, now_utc

POLICY = email.policy.SMTP
FLAG_ORDER = (*FLAGS, "quarantine")

CATEGORIES: dict[str, tuple[str, str]] = {
    # slug: (Vietnamese, English), in the order of shared/eval/taxonomy.md
    "dat-dai-xay-dung": ("Đất đai, quy hoạch, xây dựng", "Land, planning, construction"),
    "giao-thong": ("Giao thông, đường sá, chiếu sáng", "Traffic, roads, street lighting"),
    "dien-nuoc-thoat-nuoc": ("Điện, cấp thoát nước, ngập úng", "Power, water, drainage, flooding"),
    "moi-truong": ("Môi trường, vệ sinh, cây xanh, tiếng ồn", "Environment, sanitation, trees, noise"),
    "trat-tu-do-thi": ("Trật tự đô thị, lấn chiếm, mỹ quan", "Urban order, encroachment"),
    "an-ninh-trat-tu": ("An ninh trật tự, tệ nạn xã hội", "Security, public order, social evils"),
    "y-te": ("Y tế, dịch bệnh, an toàn thực phẩm", "Health, epidemics, food safety"),
    "giao-duc": ("Giáo dục, trường học", "Education, schools"),
    "chinh-sach-xa-hoi": ("Chính sách xã hội, lao động, việc làm", "Social policy, labour, jobs"),
    "thu-tuc-hanh-chinh": ("Thủ tục hành chính, dịch vụ công", "Administrative procedures"),
    "can-bo-tieu-cuc": ("Cán bộ, công chức, tham nhũng tiêu cực", "Officials' conduct, corruption"),
    "kinh-te-gia-ca": ("Kinh tế, giá cả, thuế, sản xuất", "Economy, prices, taxes"),
    "van-hoa-thong-tin": ("Văn hóa, thể thao, thông tin cơ sở", "Culture, sport, local information"),
    "khac-gop-y": ("Góp ý chung, khen ngợi, khác", "General comments, praise, other"),
}
URGENCY_NAMES = {
    "khan": ("Khẩn cấp", "Urgent"),
    "som": ("Cần xử lý sớm", "Soon"),
    "thuong": ("Bình thường", "Ordinary"),
}
STATUS_NAMES = {
    "new": ("Mới", "New"),
    "forwarded": ("Đã chuyển xử lý", "Forwarded"),
    "answered": ("Đã trả lời", "Answered"),
    "closed": ("Đã kết thúc", "Closed"),
}
FLAG_NAMES = {
    "spam": ("Thư rác, quảng cáo", "Spam"),
    "auto": ("Thư tự động (trả lời tự động, báo lỗi gửi)", "Automatic mail (auto-replies, bounces)"),
    "empty": ("Thư trống", "Empty messages"),
    "abuse": ("Lời lẽ xúc phạm, đe dọa", "Abusive or threatening"),
    "quarantine": ("Thư không đọc được (cách ly, chỉ có bản niêm phong)", "Unreadable mail (quarantined)"),
}
NO_LOCATION = ("Không rõ nơi", "Unknown place")

# Near-duplicates: same category and place, and this share of word triples in common.
SIMILARITY = 0.5
SHINGLE = 3
# Splitting: aim below the budget, since the per-entry estimate is only proportional.
FILL = 0.85


# ----- the data the templates see ------------------------------------------------

# Codes listed for one group of near-duplicates or one kind of flagged mail; the rest
# are counted. Anyone can send the mailbox ten thousand messages: an unbounded list
# would outgrow the size budget and stop the digest for everyone.
CODES_SHOWN = 30


class _Codes:
    """The codes of a group or a kind of flagged mail, as the templates list them."""

    refs: tuple[str, ...]

    @property
    def shown_refs(self) -> tuple[str, ...]:
        return self.refs[:CODES_SHOWN]

    @property
    def hidden(self) -> int:
        return len(self.refs) - len(self.shown_refs)


def _codes(item: _Codes, more: str) -> str:
    """Jinja filter: "HT-A, HT-B" and, past CODES_SHOWN, `more` ("và %d thư khác")."""
    listed = ", ".join(item.shown_refs)
    return f"{listed} {more % item.hidden}" if item.hidden else listed


@dataclass(frozen=True)
class Entry(_Codes):
    """One submission, or a group of near-duplicates shown as one."""

    ref: str
    date: str
    location: str
    category: str
    category_name: str
    urgency: str
    urgency_name: str
    text: str
    truncated: bool
    photos: int
    files: int
    status_name: str
    alerted: bool
    similar: tuple[str, ...] = ()  # the other codes of a near-duplicate group

    @property
    def count(self) -> int:
        return 1 + len(self.similar)

    @property
    def refs(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.ref, *self.similar)


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    width: int  # percent of the longest bar, 0..100
    delta: int | None = None  # against the previous digest; None when there is none


@dataclass(frozen=True)
class Section:
    slug: str
    name: str
    entries: tuple[Entry, ...]

    @property
    def count(self) -> int:
        return sum(e.count for e in self.entries)


@dataclass(frozen=True)
class Flagged(_Codes):
    flag: str
    name: str
    refs: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    ref: str
    status_name: str
    at: str


@dataclass(frozen=True)
class Digest:
    language: str
    committee: str
    address: str
    period_from: str | None  # None: the first digest
    period_to: str
    day: str  # the digest's date, for the subject
    total: int
    total_delta: int | None
    urgent_count: int
    soon_count: int
    urgency_bars: tuple[Bar, ...]
    category_bars: tuple[Bar, ...]
    location_bars: tuple[Bar, ...]
    urgent: tuple[Entry, ...]
    sections: tuple[Section, ...]
    flagged: tuple[Flagged, ...]
    changes: tuple[Change, ...]
    part: int = 1
    parts: int = 1

    @property
    def empty(self) -> bool:
        return not (self.total or self.flagged or self.changes)

    @property
    def summary(self) -> bool:
        """Totals, bars, flagged mail and changes go in the first part only."""
        return self.part == 1

    @property
    def flagged_count(self) -> int:
        return sum(len(f.refs) for f in self.flagged)

    def entries(self) -> Iterable[Entry]:
        yield from self.urgent
        for s in self.sections:
            yield from s.entries


# ----- building it from stored rows ----------------------------------------------------


def _name(names: dict[str, tuple[str, str]], key: str | None, lang: str) -> str:
    pair = names.get(key or "")
    if pair is None:
        return key or "-"
    return pair[1] if lang == "en" else pair[0]


def local_time(utc_iso: str, tz: str, lang: str) -> str:
    moment = dt.datetime.fromisoformat(utc_iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M" if lang == "en" else "%d/%m/%Y %H:%M")


def local_day(day_iso: str, lang: str) -> str:
    day = dt.date.fromisoformat(day_iso)
    return day.isoformat() if lang == "en" else day.strftime("%d/%m/%Y")


def _no_place(lang: str) -> str:
    return NO_LOCATION[1] if lang == "en" else NO_LOCATION[0]


def is_flagged(row: Row) -> bool:
    return any(f in FLAGS for f in row.flags)


def entry(config: Config, row: Row, alerted: bool) -> Entry:
    lang, limit = config.digest.language, config.digest.item_chars
    text = row.text or ""
    truncated = len(text) > limit
    if truncated:
        text = text[:limit].rstrip() + "…"
    loc = config.location(row.location) if row.location else None
    return Entry(
        ref=row.ref,
        date=local_day(row.date, lang),
        location=loc.name if loc else (row.location or _no_place(lang)),
        category=row.category or "",
        category_name=_name(CATEGORIES, row.category, lang),
        urgency=row.urgency or "thuong",
        urgency_name=_name(URGENCY_NAMES, row.urgency, lang),
        text=text,
        truncated=truncated,
        photos=len(row.images),
        files=len(row.withheld),
        status_name=_name(STATUS_NAMES, row.status, lang),
        alerted=alerted,
    )


WORD_RE = re.compile(r"\w+")


def _shingles(text: str, vocab: dict[str, int]) -> frozenset[int]:
    """Word triples as integers (words numbered in order of first appearance: stable)."""
    ids = [vocab.setdefault(w, len(vocab)) for w in WORD_RE.findall(text.casefold())]
    if len(ids) < SHINGLE:
        return frozenset(-1 - i for i in ids)  # negative: never equal to a triple
    return frozenset((x << 42) | (y << 21) | z for x, y, z in zip(ids, ids[1:], ids[2:], strict=False))


def _sample(shingles: frozenset[int]) -> list[int]:
    """About a quarter of the shingles, chosen by content: similar texts share most of them.

    Arithmetic on the numbers, not hash(): a re-sent digest must group exactly as the
    first attempt did, whatever the process's hash seed.
    """
    return [s for s in shingles if (s * 0x9E3779B1 >> 11) & 3 == 0] or sorted(shingles)


def group_similar(entries: Sequence[Entry]) -> list[Entry]:
    """Merge near-duplicates (same category, place and urgency class; similar text).

    Greedy against each group's first entry. Candidates come from an index of
    sampled word triples, so 5,000 distinct items do not cost 12 million
    comparisons; the Jaccard similarity is then computed exactly.
    """
    groups: list[tuple[Entry, frozenset[int], list[Entry]]] = []
    indexes: dict[tuple[str, str, bool], dict[int, list[int]]] = {}
    vocab: dict[str, int] = {}
    for e in entries:
        index = indexes.setdefault((e.category, e.location, e.urgency == "khan"), {})
        sh = _shingles(e.text, vocab)
        sample = _sample(sh)
        hits: dict[int, int] = {}
        for s in sample:
            for g in index.get(s, ()):
                hits[g] = hits.get(g, 0) + 1
        match = None
        for g, _n in sorted(hits.items(), key=lambda kv: -kv[1])[:5]:
            other = groups[g][1]
            common = len(sh & other)
            if common >= SIMILARITY * (len(sh) + len(other) - common):
                match = g
                break
        if match is None:
            for s in sample:
                index.setdefault(s, []).append(len(groups))
            groups.append((e, sh, []))
        else:
            groups[match][2].append(e)
    return [_merge(first, rest) for first, _sh, rest in groups]


def _merge(first: Entry, rest: list[Entry]) -> Entry:
    if not rest:
        return first
    return dataclasses.replace(
        first,
        similar=tuple(e.ref for e in rest),
        photos=first.photos + sum(e.photos for e in rest),
        files=first.files + sum(e.files for e in rest),
        alerted=first.alerted and all(e.alerted for e in rest),
    )


def _bars(counts: dict[str, int], previous: dict[str, int] | None,
          label: Callable[[str], str]) -> tuple[Bar, ...]:
    top = max(counts.values(), default=0)
    return tuple(
        Bar(
            label=label(key),
            count=n,
            width=max(2, round(100 * n / top)) if n and top else 0,
            delta=None if previous is None else n - previous.get(key, 0),
        )
        for key, n in counts.items()
    )


def _count(keys: Iterable[str], order: Iterable[str] = ()) -> dict[str, int]:
    counts = {k: 0 for k in order}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return counts


def assemble(
    config: Config,
    rows: Sequence[tuple[Row, bool]],
    quarantined: Sequence[tuple[str, str | None]],
    changes: Sequence[tuple[str, str, str]],
    created_at: str,
    previous_at: str | None,
    previous_counts: dict[str, int] | None,
) -> Digest:
    """The Digest for these rows: pure, so tests and the benchmark need no store."""
    lang, tz = config.digest.language, config.mailbox.timezone
    items = [(r, a) for r, a in rows if not is_flagged(r)]
    entries = group_similar([entry(config, r, a) for r, a in items])
    urgent = tuple(e for e in entries if e.urgency == "khan")
    rank = {"som": 0, "thuong": 1}
    sections = []
    for slug in _category_order(e.category for e in entries):
        mine = [e for e in entries if e.category == slug and e.urgency != "khan"]
        if mine:
            mine.sort(key=lambda e: rank.get(e.urgency, 2))
            sections.append(Section(slug, _name(CATEGORIES, slug, lang), tuple(mine)))
    rows_only = [r for r, _a in items]
    by_urgency = _count((r.urgency or "thuong" for r in rows_only), order=URGENCY_NAMES)
    prev_urgency = None if previous_counts is None else {
        k.removeprefix("urgency:"): v for k, v in previous_counts.items() if k.startswith("urgency:")
    }
    no_place = _no_place(lang)
    by_location = _count(
        (config.location(r.location).name if r.location and config.location(r.location)
         else (r.location or no_place)) for r in rows_only
    )
    return Digest(
        language=lang,
        committee=config.mailbox.name,
        address=config.mailbox.address,
        period_from=local_time(previous_at, tz, lang) if previous_at else None,
        period_to=local_time(created_at, tz, lang),
        day=local_time(created_at, tz, lang).split(" ")[0],
        total=len(rows_only),
        total_delta=None if previous_counts is None else
        len(rows_only) - previous_counts.get("total", 0),
        urgent_count=by_urgency.get("khan", 0),
        soon_count=by_urgency.get("som", 0),
        urgency_bars=_bars(by_urgency, prev_urgency, lambda k: _name(URGENCY_NAMES, k, lang)),
        category_bars=_bars(
            dict(sorted(_count(r.category or "" for r in rows_only).items(),
                        key=lambda kv: -kv[1])),
            previous_counts, lambda k: _name(CATEGORIES, k, lang),
        ),
        location_bars=_bars(dict(sorted(by_location.items(), key=lambda kv: -kv[1])), None, str),
        urgent=urgent,
        sections=tuple(sections),
        flagged=_flagged(rows, quarantined, lang),
        changes=tuple(
            Change(ref, _name(STATUS_NAMES, status, lang), local_time(at, tz, lang))
            for ref, status, at in changes
        ),
    )


def _category_order(present: Iterable[str]) -> list[str]:
    known = list(CATEGORIES)
    return known + sorted(set(present) - set(known))


def _flagged(rows: Sequence[tuple[Row, bool]], quarantined: Sequence[tuple[str, str | None]],
             lang: str) -> tuple[Flagged, ...]:
    by_flag: dict[str, list[str]] = {f: [] for f in FLAG_ORDER}
    for row, _a in rows:
        # An item with several flags is counted once, under its first flag in FLAGS order.
        first = next((f for f in FLAGS if f in row.flags), None)
        if first:
            by_flag[first].append(row.ref)
    by_flag["quarantine"] = [ref for ref, _kind in quarantined]
    return tuple(
        Flagged(flag, _name(FLAG_NAMES, flag, lang), tuple(refs))
        for flag, refs in by_flag.items() if refs
    )


def build(config: Config, store: Store, digest_id: int | None) -> Digest:
    """The digest a row owns; None: a preview of everything not yet in a digest."""
    created = store.digest_info(digest_id)[1] if digest_id is not None else now_utc()
    previous = store.previous_digest(digest_id)
    return assemble(
        config,
        store.digest_rows(digest_id),
        store.digest_quarantined(digest_id),
        store.digest_changes(digest_id),
        created,
        previous[1] if previous else None,
        store.digest_counts(previous[0]) if previous else None,
    )


# ----- rendering ------------------------------------------------------------------------


def _load_template(name: str) -> str | None:
    # importlib.resources: templates/ is installed as the mapped package
    # mailbox_processor.templates, which PackageLoader cannot follow.
    path = importlib.resources.files("mailbox_processor.templates").joinpath(name)
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _nl2br(text: str) -> Markup:
    return Markup("<br>\n").join(escape(line) for line in text.split("\n"))


def _wrap(text: str, width: int = 76, indent: str = "") -> str:
    """Plain-text paragraphs wrapped at spaces so lines stay readable and far below
    RFC 5322's 998 octets (textwrap was most of the render time for 5,000 items)."""
    out: list[str] = []
    for para in text.split("\n"):
        if len(indent) + len(para) <= width:
            out.append(indent + para)
            continue
        line = ""
        for word in para.split(" "):
            if line and len(indent) + len(line) + 1 + len(word) > width:
                out.append(indent + line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        out.append(indent + line)
    return "\n".join(out)


def _signed(n: int | None) -> str:
    return "" if n is None else (f"+{n}" if n > 0 else ("±0" if n == 0 else f"−{-n}"))


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        # .txt is text/plain and must not be escaped; anything else unknown is, to be safe.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("txt",),
            default_for_string=True, default=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["nl2br"] = _nl2br
    env.filters["wrap"] = _wrap
    env.filters["signed"] = _signed
    env.filters["codes"] = _codes
    return env


@functools.cache
def _inliner() -> css_inline.CSSInliner:
    # keep_at_rules: the dark-mode @media block stays in <head> for clients that honour it;
    # every other rule is inlined, because Gmail drops <style> for many accounts.
    return css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True,
                                 load_remote_stylesheets=False)


def template_name(base: str, ext: str, lang: str) -> str:
    return f"{base}.en.{ext}" if lang == "en" else f"{base}.{ext}"


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def render(digest: Digest, *, inline: bool = True) -> Rendered:
    env = environment()
    html = env.get_template(template_name("digest", "html", digest.language)).render(d=digest)
    text = env.get_template(template_name("digest", "txt", digest.language)).render(d=digest)
    if inline:
        html = _inliner().inline(html)
    return Rendered(subject=subject(digest), html=wrap_html(html), text=text)


def render_alert(config: Config, entries: Sequence[Entry], when: str) -> Rendered:
    """Several neighbours reporting the same fire make one entry, as in the digest."""
    env = environment()
    lang = config.digest.language
    grouped = group_similar(entries)
    n = sum(e.count for e in grouped)
    ctx = {"entries": grouped, "total": n, "committee": config.mailbox.name, "when": when,
           "lang": lang}
    html = _inliner().inline(env.get_template(template_name("alert", "html", lang)).render(**ctx))
    text = env.get_template(template_name("alert", "txt", lang)).render(**ctx)
    subj = (f"[KHẨN] Hòm thư số: {n} phản ánh khẩn cấp" if lang != "en"
            else f"[URGENT] Hòm thư số: {n} urgent report{'s' if n != 1 else ''}")
    return Rendered(subject=subj, html=wrap_html(html), text=text)


def subject(d: Digest) -> str:
    """Fixed words, the date and counts: never any citizen text."""
    part = ""
    if d.parts > 1:
        part = f" (Part {d.part}/{d.parts})" if d.language == "en" else f" (Phần {d.part}/{d.parts})"
    if d.language == "en":
        if d.empty:
            return f"Hòm thư số digest {d.day}: nothing new{part}"
        return f"Hòm thư số digest {d.day}: {d.total} new, {d.urgent_count} urgent{part}"
    if d.empty:
        return f"Hòm thư số – tổng hợp ngày {d.day}: không có ý kiến mới{part}"
    return (f"Hòm thư số – tổng hợp ngày {d.day}: {d.total} ý kiến, "
            f"{d.urgent_count} khẩn cấp{part}")


def wrap_html(html: str, limit: int = 800) -> str:
    """Break long HTML lines at spaces so the part can travel as 8bit (998-octet lines).

    Outside <pre> (which the templates never use) a newline is as good as a space.
    """
    lines = []
    for line in html.split("\n"):
        while len(line.encode("utf-8")) > limit:
            cut = line.rfind(" ", 0, limit // 2)
            if cut <= 0:
                cut = line.find(" ", limit // 2)
            if cut <= 0:
                break
            lines.append(line[:cut])
            line = line[cut + 1 :]
        lines.append(line)
    return "\n".join(lines)


# ----- the email ----------------------------------------------------------------------------


def part_message_id(message_id: str, part: int, parts: int) -> str:
    """Part 1 keeps the digest's Message-ID; the others derive theirs from it, stably."""
    if parts == 1 or part == 1:
        return message_id
    local, _, domain = message_id.strip("<>").rpartition("@")
    return f"<{local}.p{part}of{parts}@{domain}>"


def new_message(config: Config, rendered: Rendered, message_id: str, date: str,
                to: Sequence[str]) -> EmailMessage:
    smtp = mail.smtp_config(config)
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = rendered.subject
    msg["From"] = smtp.from_
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(dt.datetime.fromisoformat(date).astimezone(dt.UTC))
    msg["Message-ID"] = message_id
    # RFC 3834 and Exchange: no out-of-office replies to a robot's mail.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(rendered.text, cte=mail.text_cte(rendered.text))
    if rendered.html:  # the intake notice is plain text only
        msg.add_alternative(rendered.html, subtype="html", cte=mail.text_cte(rendered.html))
    return msg


def size(msg: EmailMessage) -> int:
    return len(msg.as_bytes(policy=POLICY))


def _parts(d: Digest, groups: list[list[tuple[str | None, Entry]]]) -> list[Digest]:
    out = []
    for k, group in enumerate(groups, start=1):
        urgent = tuple(e for slug, e in group if slug is None)
        sections = []
        for s in d.sections:
            mine = tuple(e for slug, e in group if slug == s.slug)
            if mine:
                sections.append(dataclasses.replace(s, entries=mine))
        out.append(dataclasses.replace(d, urgent=urgent, sections=tuple(sections),
                                       part=k, parts=len(groups)))
    return out


def split(d: Digest, max_bytes: int, measure: Callable[[Digest], int]) -> list[Digest]:
    """The digest as one or more parts, each measuring at most max_bytes.

    Entries keep their order; the size of each is estimated from its text
    length, then every part is measured for real and the budget tightened
    until all fit.
    """
    whole = measure(d)
    if whole <= max_bytes:
        return [d]
    flat: list[tuple[str | None, Entry]] = [(None, e) for e in d.urgent]
    flat += [(s.slug, e) for s in d.sections for e in s.entries]
    bare = dataclasses.replace(d, urgent=(), sections=())
    overhead = [measure(bare), measure(dataclasses.replace(bare, part=2, parts=2))]
    weights = [len(e.text.encode("utf-8")) + 400 + 20 * len(e.shown_refs) for _s, e in flat]
    per_weight = max(1.0, (whole - overhead[0]) / max(1, sum(weights)))
    fill = FILL
    for _attempt in range(12):
        groups = _pack(flat, weights, per_weight, overhead, max_bytes * fill)
        parts = _parts(d, groups)
        if all(measure(p) <= max_bytes for p in parts):
            return parts
        fill *= 0.85
    raise ConfigError(f"digest.max_bytes = {max_bytes} is too small for a single entry")


def _pack(flat: list[tuple[str | None, Entry]], weights: list[int], per_weight: float,
          overhead: list[int], budget: float) -> list[list[tuple[str | None, Entry]]]:
    groups: list[list[tuple[str | None, Entry]]] = [[]]
    used = float(overhead[0])
    for item, w in zip(flat, weights, strict=True):
        cost = w * per_weight
        if groups[-1] and used + cost > budget:
            groups.append([])
            used = float(overhead[1])
        groups[-1].append(item)
        used += cost
    return groups


@dataclass(frozen=True)
class Mail:
    """One part of a digest and the message that carries it."""

    part: Digest
    message: EmailMessage

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(ref for e in self.part.entries() for ref in e.refs)


def parts_key(mails: Sequence[Mail]) -> str:
    """Which items went into which part: a re-send may skip the parts the server already
    accepted only if the new split puts exactly the same items in them."""
    return hashlib.sha256(json.dumps([m.refs for m in mails]).encode()).hexdigest()


def compose(config: Config, d: Digest, message_id: str, date: str,
            photos: Callable[[str], list[Image]] | None = None) -> list[Mail]:
    """The mails of one digest: each under digest.max_bytes, photos added while they fit."""
    to = config.digest.to
    budget = config.digest.max_bytes

    def message(part: Digest) -> EmailMessage:
        mid = part_message_id(message_id, part.part, part.parts)
        return new_message(config, render(part), mid, date, to)

    mails = [Mail(p, message(p)) for p in split(d, budget, lambda p: size(message(p)))]
    if config.digest.attach_photos and photos is not None:
        for m in mails:
            _attach(m.message, m.part, photos, budget)
    return mails


def _attach(msg: EmailMessage, part: Digest, photos: Callable[[str], list[Image]],
            budget: int) -> None:
    used = size(msg)
    for entry in part.entries():
        for ref in entry.refs:
            for img in photos(ref):
                # base64 grows by 4/3, plus its MIME headers.
                cost = len(img.data) * 4 // 3 + len(img.data) // 38 + 400
                if used + cost > budget:
                    return
                maintype, _, subtype = img.content_type.partition("/")
                msg.add_attachment(img.data, maintype=maintype, subtype=subtype,
                                   filename=f"{ref}-{img.name}")
                used = size(msg)


# ----- the exactly-once flow --------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    digest_id: int
    message_id: str
    created_at: str
    resend: bool  # a pending digest from a run that did not finish


@dataclass(frozen=True)
class Result:
    digest_id: int | None
    message_id: str | None
    items: int
    parts: int
    bytes: tuple[int, ...]
    sent: bool
    resend: bool = False
    accepted_before: int = 0  # parts the server had accepted in an unfinished run

    def line(self) -> str:
        if self.digest_id is None and not self.sent and not self.parts:
            return "nothing to send: no new items (digest.send_empty = false)"
        sizes = ", ".join(f"{b / 1000:.1f} kB" for b in self.bytes)
        what = f"{self.items} items in {self.parts} part(s) ({sizes})"
        if not self.sent:
            return f"dry run: would send {what}"
        again = " (re-sent after an unfinished run)" if self.resend else ""
        if self.accepted_before:
            again = (f" (finished after an unfinished run: {self.accepted_before} part(s) had "
                     "been accepted already)")
        return f"digest {self.digest_id} sent{again}: {what}, {self.message_id}"


def claim(config: Config, store: Store) -> Claim | None:
    """The pending digest if a run did not finish, else a new one owning every new item."""
    pending = store.pending_digest()
    if pending is not None:
        digest_id, mid = pending
        return Claim(digest_id, mid, store.digest_info(digest_id)[1], resend=True)
    mid = mail.message_id(config, "digest")
    digest_id = store.claim_digest(mid, empty_ok=config.digest.send_empty)
    if digest_id is None:
        return None
    return Claim(digest_id, mid, store.digest_info(digest_id)[1], resend=False)


def _check(config: Config) -> None:
    mail.smtp_config(config)
    if not config.digest.to:
        raise ConfigError(f"{config.path}: digest.to is empty; name at least one leader")


def send(config: Config, store: Store, *, dry_run: bool = False) -> Result:
    """Send one digest, exactly once; TransientError (nothing marked) when SMTP fails."""
    _check(config)
    if dry_run:
        pending = store.pending_digest()
        d = build(config, store, pending[0] if pending else None)
        if d.empty and not config.digest.send_empty and pending is None:
            return Result(None, None, 0, 0, (), sent=False)
        mails = compose(config, d, mail.message_id(config, "dry-run"), now_utc(), store.images)
        return Result(None, None, d.total, len(mails), _sizes(mails), sent=False)
    # Connect before claiming: with the server down, the store is not touched at all.
    with mail.connect(config) as client:
        c = claim(config, store)
        if c is None:
            return Result(None, None, 0, 0, (), sent=False)
        d = build(config, store, c.digest_id)
        mails = compose(config, d, c.message_id, c.created_at, store.images)
        key = parts_key(mails)
        # A split digest that failed half-way resumes after the parts already accepted.
        done = store.digest_parts_sent(c.digest_id, key)
        for n, m in enumerate(mails[done:], start=done + 1):
            mail.deliver(config, client, m.message, to=config.digest.to)
            store.mark_digest_part_sent(c.digest_id, key, n)
    # Only now: had the server refused, the digest would stay pending for the next run.
    store.mark_digest_sent(c.digest_id)
    return Result(c.digest_id, c.message_id, d.total, len(mails), _sizes(mails), sent=True,
                  resend=c.resend, accepted_before=done)


def _sizes(mails: Sequence[Mail]) -> tuple[int, ...]:
    return tuple(size(m.message) for m in mails)


def preview(config: Config, store: Store, out: Path) -> tuple[Path, Path]:
    """Write the next digest (HTML and text, unsplit) without sending or marking anything."""
    pending = store.pending_digest()
    d = build(config, store, pending[0] if pending else None)
    r = render(d)
    text_path = out.with_suffix(".txt") if out.suffix not in ("", ".txt") else Path(f"{out}.txt")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(r.html, encoding="utf-8")
        text_path.write_text(r.text, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot write: {e.strerror}") from None
    return out, text_path
