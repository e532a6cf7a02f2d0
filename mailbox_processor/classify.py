"""Topic, urgency and flags of a submission, from a lexicon of weighted Vietnamese phrases.

The lexicon (config/categories.toml, editable by ward staff) is compiled once
into a dict from first syllable to phrases, longest first. Matching runs on
NFC, lower-cased text, syllable by syllable, never across a sentence break; a
longer phrase consumes its span, so "môi trường" is never also "trường".

Accent folding makes distinct words collide (sập/sắp, cháy/chạy, chợ/cho,
tự tử/từ từ), so a line is matched without accents only when it was written
without them; even then the phrases listed under [accents] strict match only
with their diacritics.
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .models import Classification, Submission
from .vietnamese import FOLD, fold_chars

# The fixed slugs of shared/eval/taxonomy.md, in the order leaders see them.
CATEGORIES: tuple[str, ...] = (
    "dat-dai-xay-dung",
    "giao-thong",
    "dien-nuoc-thoat-nuoc",
    "moi-truong",
    "trat-tu-do-thi",
    "an-ninh-trat-tu",
    "y-te",
    "giao-duc",
    "chinh-sach-xa-hoi",
    "thu-tuc-hanh-chinh",
    "can-bo-tieu-cuc",
    "kinh-te-gia-ca",
    "van-hoa-thong-tin",
    "khac-gop-y",
)
FALLBACK = "khac-gop-y"
FLAG_TABLES = ("spam", "abuse", "empty")
SHIPPED = "categories.toml"
MAX_WEIGHT = 10  # far above any real phrase: catches a typed 30 meant as 3

# Hit kinds. A phrase may carry several hits ("cháy nhà": a category and khan).
CAT, KHAN, SOM, NEG, NONEG, RESOLVED, SPAM, ABUSE, EMPTY, IGNORE, ONGOING = range(11)

_SENTENCE_RE = re.compile(r"[.!?;…\n]+")
_CLAUSE_RE = re.compile(r"[,:]+")
_TOKEN_RE = re.compile(r"[^\W_]+")
_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# What anonymise.py puts in place of identifiers (MARK_NAME, MARK_EMAIL, ...).
_MARK_RE = re.compile(r"\[(?:tên|email|số điện thoại|số giấy tờ)\]", re.IGNORECASE)


# ----- accent folding ---------------------------------------------------------------


_FOLD = FOLD


def fold(text: str) -> str:
    """Remove Vietnamese diacritics (NFC input or not), mapping đ→d."""
    text = fold_chars(unicodedata.normalize("NFC", text))
    if text.isascii():
        return text
    # Combining marks left over (a mark on a letter with no precomposed form).
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


# Old and new tone placement are both NFC and both common: "hoà"/"hòa",
# "thuý"/"thúy", "khoẻ"/"khỏe". Rewrite a final oa/oe/uy to the tone-on-first form.
_TONES = {
    "a": "àáảãạ", "e": "èéẻẽẹ", "y": "ỳýỷỹỵ", "o": "òóỏõọ", "u": "ùúủũụ",
}
_TONE_OF = {c: i for marks in _TONES.values() for i, c in enumerate(marks)}
_OLD_STYLE_RE = re.compile(r"(o[àáảãạèéẻẽẹ]|(?<!q)u[ỳýỷỹỵ])(?![^\W\d_])")


def _tone_first(m: re.Match[str]) -> str:
    first, second = m.group(1)
    tone = _TONE_OF[second]
    base = unicodedata.normalize("NFD", second)[0]
    return _TONES[first][tone] + base


def normalise(text: str) -> str:
    """NFC, lower case, one tone placement."""
    text = unicodedata.normalize("NFC", text).lower()
    return _OLD_STYLE_RE.sub(_tone_first, text) if not text.isascii() else text


def strip_accents(text: str) -> str:
    """The text as someone typing without a Vietnamese keyboard would have written it."""
    return fold(unicodedata.normalize("NFC", text))


def _is_vietnamese_letter(ch: str) -> bool:
    return ord(ch) in _FOLD


# ----- the lexicon ------------------------------------------------------------------


Phrase = tuple[str, ...]
Hit = tuple[int, str, float]  # kind, target (category slug or ""), weight
# First syllable → (phrase length, {phrase: hits}) from the longest length down: one dict
# lookup per length instead of comparing every phrase that starts with the syllable.
Index = dict[str, tuple[tuple[int, dict[Phrase, tuple[Hit, ...]]], ...]]


@dataclass(frozen=True)
class Lexicon:
    """A compiled categories file: two indexes (with and without accents) and the names."""

    source: str
    names: tuple[tuple[str, str], ...]  # (slug, Vietnamese name)
    exact: Index
    folded: Index
    unaccented_below: float = 0.25
    negation_window: int = 3
    max_links: int = 3
    min_score: float = 1.0

    def name(self, slug: str) -> str:
        return dict(self.names).get(slug, slug)


def load_lexicon(path: str | None) -> Lexicon:
    """The categories file at `path`, or the shipped one; ConfigError names file and line."""
    if path is None:
        try:
            res = resources.files("mailbox_processor.defaults") / SHIPPED
            text = res.read_text(encoding="utf-8")
        except (ModuleNotFoundError, OSError) as e:
            raise ConfigError(f"the shipped {SHIPPED} cannot be read ({e}); reinstall") from None
        return parse_lexicon(text, SHIPPED)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"classify.categories_file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"classify.categories_file {path}: cannot read: {e}") from None
    return parse_lexicon(text, path)


class _Lines:
    """Finds the line of a key or string in the raw file, since tomllib gives none."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def header(self, table: str) -> int:
        want = table.replace('"', "")
        for n, line in enumerate(self.lines, 1):
            s = line.split("#", 1)[0].strip().replace('"', "").replace(" ", "")
            if s in (f"[{want}]", f"[[{want}]]"):
                return n
        return 0

    def item(self, table: str, key: str) -> int:
        """Line of `key = ...` or of the string "key" inside `table`, else the table's line."""
        start = self.header(table)
        quoted = (f'"{key}"', f"'{key}'")
        for n in range(start + 1 if start else 1, len(self.lines) + 1):
            line = self.lines[n - 1]
            s = line.strip()
            if start and n > start and re.match(r"^\[\[?[\w\".-]", s):
                break  # the next table: the key is not in this one
            if any(q in line for q in quoted) or re.match(rf"^\s*{re.escape(key)}\s*=", line):
                return n
        return start

    def error(self, line: int, message: str) -> ConfigError:
        where = f"{self.source} line {line}" if line else self.source
        return ConfigError(f"{where}: {message}")


def parse_lexicon(text: str, source: str) -> Lexicon:
    lines = _Lines(text, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise lines.error(int(m.group(1)) if m else 0, f"not valid TOML: {msg}") from None
    builder = _Builder(lines)
    return builder.build(data)


class _Builder:
    def __init__(self, lines: _Lines) -> None:
        self.lines = lines
        self.entries: dict[Phrase, list[Hit]] = {}
        self.strict: set[Phrase] = set()

    def fail(self, table: str, key: str | None, message: str) -> ConfigError:
        line = self.lines.item(table, key) if key is not None else self.lines.header(table)
        return self.lines.error(line, message)

    def build(self, data: dict[str, Any]) -> Lexicon:
        known = {"settings", "categories", "urgency", "negation", "accents", "flags", "ignore"}
        for key in data:
            if key not in known:
                raise self.fail(key, None if isinstance(data[key], dict) else key,
                                f"unknown section [{key}] (expected one of {sorted(known)})")
        settings = self._settings(data.get("settings", {}))
        names = self._categories(data.get("categories"))
        self._urgency(data.get("urgency", {}))
        self._negation(data.get("negation", {}))
        self._flags(data.get("flags", {}))
        self._lists(data.get("ignore", {}), "ignore", {"phrases": IGNORE})
        self._accents(data.get("accents", {}))
        exact, folded = self._indexes()
        return Lexicon(source=self.lines.source, names=names, exact=exact, folded=folded,
                       **settings)

    def _table(self, value: object, table: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(table, None, f"[{table}] must be a table")
        return value

    def _settings(self, value: object) -> dict[str, Any]:
        t = self._table(value, "settings")
        out: dict[str, Any] = {}
        rules = {"unaccented_below": (float, 0.0, 1.0), "negation_window": (int, 1, 10),
                 "max_links": (int, 1, 100), "min_score": (float, 0.0, 100.0)}
        for key, v in t.items():
            if key not in rules:
                raise self.fail("settings", key, f"unknown setting {key!r}")
            kind, lo, hi = rules[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                raise self.fail("settings", key, f"{key} must be a number from {lo} to {hi}")
            out[key] = kind(v)
        return out

    def _categories(self, value: object) -> tuple[tuple[str, str], ...]:
        if value is None:
            raise self.lines.error(0, "no [categories.<slug>] tables")
        cats = self._table(value, "categories")
        names = []
        for slug, body in cats.items():
            table = f"categories.{slug}"
            if slug not in CATEGORIES:
                raise self.fail(table, None, f"unknown category slug {slug!r} "
                                "(the slugs of taxonomy.md are fixed)")
            body = self._table(body, table)
            extra = set(body) - {"name", "phrases"}
            if extra:
                key = sorted(extra)[0]
                raise self.fail(table, key, f"unknown key {key!r} (expected name, phrases)")
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                raise self.fail(table, "name" if "name" in body else None,
                                f"category {slug!r} needs a name = \"...\"")
            phrases = self._table(body.get("phrases", {}), f"{table}.phrases")
            if not phrases and slug != FALLBACK:
                raise self.fail(f"{table}.phrases" if "phrases" in body else table, None,
                                f"category {slug!r} has no phrases")
            for phrase, weight in phrases.items():
                where = (f"{table}.phrases", phrase)
                if isinstance(weight, bool) or not isinstance(weight, int | float) \
                        or not math.isfinite(weight) or weight <= 0:
                    raise self.fail(*where, "weight must be a positive number")
                if weight > MAX_WEIGHT:
                    raise self.fail(*where, f"weight must be at most {MAX_WEIGHT} "
                                    "(3 is already a strong phrase)")
                self._add(phrase, (CAT, slug, float(weight)), *where)
            names.append((slug, name.strip()))
        missing = [s for s in CATEGORIES if s not in cats]
        if missing:
            raise self.lines.error(0, f"category {missing[0]!r} is missing")
        return tuple(names)

    def _strings(self, value: object, table: str, key: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(table, key, f"{table}.{key} must be a list of strings")
        return value

    def _lists(self, value: object, table: str, kinds: dict[str, int]) -> None:
        t = self._table(value, table)
        for key, items in t.items():
            if key not in kinds:
                raise self.fail(table, key, f"unknown key {key!r} (expected {', '.join(kinds)})")
            for phrase in self._strings(items, table, key):
                self._add(phrase, (kinds[key], "", 1.0), table, phrase)

    def _urgency(self, value: object) -> None:
        self._lists(value, "urgency", {"khan": KHAN, "som": SOM, "ongoing": ONGOING})

    def _negation(self, value: object) -> None:
        self._lists(value, "negation", {"before": NEG, "not_negation": NONEG,
                                        "resolved": RESOLVED})

    def _flags(self, value: object) -> None:
        t = self._table(value, "flags")
        for key, items in t.items():
            if key not in FLAG_TABLES:
                raise self.fail("flags", key, f"unknown flag {key!r} (expected spam, abuse, empty)")
            kind = {"spam": SPAM, "abuse": ABUSE, "empty": EMPTY}[key]
            for phrase in self._strings(items, "flags", key):
                self._add(phrase, (kind, "", 1.0), "flags", phrase)

    def _accents(self, value: object) -> None:
        t = self._table(value, "accents")
        for key, items in t.items():
            if key != "strict":
                raise self.fail("accents", key, f"unknown key {key!r} (expected strict)")
            for phrase in self._strings(items, "accents", key):
                tokens = self._tokens(phrase, "accents", phrase)
                self.strict.add(tuple(fold(t) for t in tokens))

    def _tokens(self, phrase: str, table: str, key: str) -> Phrase:
        tokens = tuple(_TOKEN_RE.findall(normalise(phrase)))
        if not tokens:
            raise self.fail(table, key, f"phrase {phrase!r} has no letters")
        return tokens

    def _add(self, phrase: str, hit: Hit, table: str, key: str) -> None:
        self.entries.setdefault(self._tokens(phrase, table, key), []).append(hit)

    def _inherit_topics(self) -> None:
        """An urgency phrase keeps the topic of the category phrase inside it.

        "đang đánh nhau" consumes its span, so without this the "đánh nhau"
        in it would no longer count for an-ninh-trat-tu.
        """
        topical = {p: [h for h in hits if h[0] == CAT] for p, hits in self.entries.items()}
        for phrase, hits in self.entries.items():
            if topical[phrase] or not any(h[0] in (KHAN, SOM, ONGOING, RESOLVED) for h in hits):
                continue
            inner = [
                phrase[i:j] for i in range(len(phrase)) for j in range(len(phrase), i, -1)
                if (i, j) != (0, len(phrase)) and topical.get(phrase[i:j])
            ]
            if inner:
                hits.extend(topical[max(inner, key=len)])

    def _indexes(self) -> tuple[Index, Index]:
        self._inherit_topics()
        exact: dict[Phrase, list[Hit]] = self.entries
        folded: dict[Phrase, list[Hit]] = {}
        for phrase, hits in exact.items():
            key = tuple(fold(t) for t in phrase)
            if key in self.strict:
                continue  # ambiguous once accents are gone: match only as written
            folded.setdefault(key, []).extend(hits)
        return _index(exact), _index(folded)


def _index(entries: dict[Phrase, list[Hit]]) -> Index:
    by_first: dict[str, dict[int, dict[Phrase, tuple[Hit, ...]]]] = {}
    for phrase, hits in entries.items():
        by_first.setdefault(phrase[0], {}).setdefault(len(phrase), {})[phrase] = tuple(hits)
    return {
        first: tuple(sorted(by_length.items(), reverse=True))
        for first, by_length in by_first.items()
    }


# ----- matching ---------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    sentence: int
    clause: int  # part of a sentence between commas: where a negator reaches
    start: int  # token index within the clause
    end: int
    phrase: str
    hits: tuple[Hit, ...]
    position: int  # token index within the whole text (earlier problems weigh more)
    formula: bool = False  # in a salutation or closing: names the addressee, not the problem


def _unaccented(tokens: list[str], threshold: float) -> bool:
    """True when a line was typed without diacritics (few or no accented syllables)."""
    words = [t for t in tokens if not t.isdigit()]
    if not words:
        return False
    accented = sum(1 for t in words if t.translate(FOLD) != t)
    return accented / len(words) < threshold


# Letters to the Front open with "Kính gửi Ủy ban MTTQ phường," and close with "Trân
# trọng cảm ơn.": in every petition alike, so those clauses say nothing about the topic
# (they would otherwise file everything under the Front and thanks). Folded forms.
SALUTATIONS = ("kinh gui", "kinh thua", "gui", "thua", "kinh chao", "xin chao", "chao")
CLOSINGS = ("tran trong", "xin chan thanh cam on", "chan thanh cam on", "xin cam on",
            "cam on", "em xin cam on", "toi xin cam on", "em cam on", "kinh chuc", "chuc")
SALUTATION_MAX = 16  # tokens: a longer first clause is content typed without a comma
CLOSING_MAX = 8


def _starts(tokens: list[str], formulas: tuple[str, ...]) -> bool:
    head = " ".join(fold(t) for t in tokens[:5])
    return any(head == f or head.startswith(f + " ") for f in formulas)


def find(text: str, lexicon: Lexicon) -> list[Match]:
    """Every phrase of the lexicon in `text`, leftmost-longest (a longer overlapping one
    winning), per clause; those in a salutation or a closing are marked `formula`."""
    matches: list[Match] = []
    sentence = clause = position = 0
    last: tuple[int, list[str]] = (0, [])  # the last sentence and its tokens
    for line in normalise(text).split("\n"):
        line_tokens = _TOKEN_RE.findall(line)
        if not line_tokens:
            continue
        folded = _unaccented(line_tokens, lexicon.unaccented_below)
        for part in _SENTENCE_RE.split(line):
            sentence_tokens: list[str] = []
            for piece in _CLAUSE_RE.split(part):
                tokens = _TOKEN_RE.findall(piece)
                start = len(matches)
                if folded:
                    _scan([fold(t) for t in tokens], lexicon.folded, None,
                          (sentence, clause, position), matches)
                else:
                    _scan(tokens, lexicon.exact, lexicon.folded, (sentence, clause, position),
                          matches)
                if len(tokens) <= SALUTATION_MAX and _starts(tokens, SALUTATIONS):
                    matches[start:] = [replace(m, formula=True) for m in matches[start:]]
                sentence_tokens += tokens
                clause += 1
                position += len(tokens)
            if sentence_tokens:
                last = (sentence, sentence_tokens)
                sentence += 1
    # A short thanks after a letter about something is a closing; alone, it is the message.
    end, tokens = last
    if len(tokens) <= CLOSING_MAX and _starts(tokens, CLOSINGS) and any(
        m.sentence < end and not m.formula and any(h[0] == CAT for h in m.hits)
        for m in matches
    ):
        matches = [replace(m, formula=True) if m.sentence == end else m for m in matches]
    return matches


def _scan(tokens: list[str], index: Index, fallback: Index | None,
          where: tuple[int, int, int], out: list[Match]) -> None:
    """Leftmost-longest matching; in accented text a run of unaccented syllables may
    still match a phrase of two or more syllables without accents ("mat dien")."""
    sentence, clause, offset = where
    i, n = 0, len(tokens)
    while i < n:
        found = _at(tokens, i, index, fallback)
        if found is None:
            i += 1
            continue
        k, hits = found
        # A longer phrase that starts inside this one and reaches past it wins:
        # "nước ngập đến ngực" is "ngập đến ngực" (khẩn), not "nước ngập" (sớm).
        longer = next((j for j in range(i + 1, i + k)
                       if (f := _at(tokens, j, index, fallback)) and f[0] > k
                       and j + f[0] > i + k), None)
        if longer is not None:
            i = longer
            continue
        out.append(Match(sentence, clause, i, i + k, " ".join(tokens[i:i + k]), hits,
                         offset + i))
        i += k


def _at(tokens: list[str], i: int, index: Index,
        fallback: Index | None) -> tuple[int, tuple[Hit, ...]] | None:
    found = _longest(tokens, i, index.get(tokens[i]), 1)
    if found is None and fallback is not None and tokens[i].isascii():
        found = _longest(tokens, i, fallback.get(tokens[i]), 2)
    return found


def _longest(tokens: list[str], i: int,
             candidates: tuple[tuple[int, dict[Phrase, tuple[Hit, ...]]], ...] | None,
             min_len: int) -> tuple[int, tuple[Hit, ...]] | None:
    if not candidates:
        return None
    n = len(tokens)
    for k, phrases in candidates:  # longest first
        if k < min_len:
            break
        if i + k > n:
            continue
        hits = phrases.get(tuple(tokens[i:i + k]))
        if hits is None:
            continue
        if min_len > 1 and not all(t.isascii() for t in tokens[i:i + k]):
            continue
        return k, hits
    return None


# ----- deciding ---------------------------------------------------------------------


def classify(submission: Submission, lexicon: Lexicon) -> Classification:
    return classify_text(submission.text, lexicon, automatic=submission.automatic)


def classify_text(text: str, lexicon: Lexicon, *, automatic: bool = False) -> Classification:
    # The anonymiser's marks ("[số giấy tờ]") are not the citizen's words.
    text = _MARK_RE.sub(" ", text)
    matches = find(text, lexicon)
    negated = _negated(matches, lexicon.negation_window)
    scores: dict[str, float] = {}
    cues: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    topical = [m for m in matches if not m.formula]
    if not any(kind == CAT for m in topical for kind, _s, _w in m.hits):
        topical = matches  # nothing but formulas ("Kính gửi phường đèn hỏng"): use them
    for m in topical:
        # A word repeated is weaker evidence each time: 1, 1/2, 1/4...
        repeat = 0.5 ** seen.get(m.phrase, 0)
        seen[m.phrase] = seen.get(m.phrase, 0) + 1
        for kind, slug, weight in m.hits:
            if kind == CAT:
                # The first concrete problem named is usually the one to act on;
                # a smooth decay also makes exact ties rare.
                boost = 1.0 + 0.5 * math.exp(-m.position / 30.0)
                scores[slug] = scores.get(slug, 0.0) + weight * boost * repeat
                cues.setdefault(slug, []).append(m.phrase)
    category, confidence = _decide(scores, lexicon.min_score)
    urgency, urgency_cues = _urgency(matches, negated)
    flags = _flags(text, matches, sum(scores.values()), lexicon, automatic)
    if flags & {"spam", "auto", "empty"}:
        urgency, urgency_cues = "thuong", []  # never alert on a bounce or an advert
    chosen = cues.get(category, []) if category != FALLBACK or scores else []
    return Classification(
        category=category,
        urgency=urgency,
        confidence=confidence,
        flags=flags,
        cues=tuple(dict.fromkeys(urgency_cues + chosen)),
    )


def _decide(scores: dict[str, float], min_score: float) -> tuple[str, float]:
    if not scores:
        return FALLBACK, 0.0
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    top_slug, top = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    if top - second < 1e-9 or top < min_score:
        return FALLBACK, 0.0
    share = top / sum(scores.values())
    evidence = 1.0 - math.exp(-top / 3.0)
    return top_slug, round(share * evidence, 3)


def _negated(matches: list[Match], window: int) -> set[Match]:
    """Cues cancelled by a negator just before them ("không nguy hiểm") or a
    resolution in the same sentence ("đã khắc phục")."""
    out: set[Match] = set()
    resolved = {m.sentence for m in matches if any(h[0] == RESOLVED for h in m.hits)}
    last_neg: dict[int, int] = {}  # clause → end of the latest negator
    for m in matches:
        kinds = {h[0] for h in m.hits}
        if NEG in kinds:
            last_neg[m.clause] = m.end
            continue
        if not kinds & {KHAN, SOM}:
            continue  # the topic stays the topic: only urgency is negated
        end = last_neg.get(m.clause)
        if (end is not None and 0 <= m.start - end < window) or m.sentence in resolved:
            out.add(m)
    return out


def _urgency(matches: list[Match], negated: set[Match]) -> tuple[str, list[str]]:
    found: dict[int, list[str]] = {KHAN: [], SOM: [], ONGOING: []}
    for m in matches:
        if m in negated:
            continue
        for kind, _slug, _w in m.hits:
            if kind in found:
                found[kind].append(m.phrase)
    if found[KHAN] and not found[ONGOING]:
        return "khan", found[KHAN]
    if found[KHAN]:
        # A danger that has lasted weeks is serious but not sudden.
        return "som", found[KHAN] + found[ONGOING]
    if found[SOM]:
        return "som", found[SOM]
    return "thuong", []


def _flags(text: str, matches: list[Match], score: float, lexicon: Lexicon,
           automatic: bool) -> frozenset[str]:
    flags: set[str] = {"auto"} if automatic else set()
    counts = {SPAM: 0, ABUSE: 0, EMPTY: 0}
    filler = 0  # tokens covered by "empty" phrases (test, greetings, signatures)
    for m in matches:
        for kind, _slug, _w in m.hits:
            if kind in counts:
                counts[kind] += 1
                if kind == EMPTY:
                    filler += m.end - m.start
    words = _TOKEN_RE.findall(_URL_RE.sub(" ", normalise(text)))
    links = len(_URL_RE.findall(text))
    # With this much topic evidence a message is a petition, whatever else it says.
    petition = score >= 2 * lexicon.min_score
    if counts[SPAM] >= 2 or (counts[SPAM] and not petition) or links >= lexicon.max_links \
            or _foreign(words):
        flags.add("spam")
    if counts[ABUSE] and not petition:
        flags.add("abuse")
    content = len(words) - filler
    if not flags - {"auto"} and score < lexicon.min_score and content <= 3:
        flags.add("empty")
    return frozenset(flags)


# The shape of a Vietnamese syllable once accents are gone: onset, one to three
# vowels, coda. Vietnamese typed without accents is nearly all such syllables;
# English or French prose mostly is not ("dear", "friend", "business").
_VI_SYLLABLE_RE = re.compile(
    r"^(ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdđghklmnprstvx])?[aeiouy]{1,3}(ng|nh|ch|[cmnpt])?$"
)


def _foreign(words: list[str]) -> bool:
    """Long enough to judge, no Vietnamese letter, and another script or not Vietnamese syllables."""
    chars = [c for w in words for c in w if c.isalpha()]
    if len(chars) < 12 or any(_is_vietnamese_letter(c) for c in chars):
        return False
    if sum(1 for c in chars if c.isascii()) < len(chars) / 2:
        return True  # another script altogether (Chinese, Cyrillic, Thai...)
    latin = [w for w in words if not w.isdigit()]
    if len(latin) < 6:
        return False
    syllables = sum(1 for w in latin if _VI_SYLLABLE_RE.match(w))
    return syllables / len(latin) < 0.6
