"""Accuracy of the classifier on a labelled CSV (columns text, category, urgency).

Macro-F1 averages F1 over the labels that occur in the gold column or in the
predictions (what scikit-learn's f1_score(average="macro") does), so a
category the file never mentions and the classifier never guesses does not
count as a perfect 1.0 or a 0.0.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import classify
from .errors import ConfigError
from .models import URGENCIES

REQUIRED = ("text", "category", "urgency")


@dataclass(frozen=True)
class Example:
    line: int
    text: str
    category: str
    urgency: str


@dataclass(frozen=True)
class Scores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int  # how many gold examples have this label


@dataclass(frozen=True)
class Report:
    n: int
    accuracy: float
    categories: tuple[Scores, ...]
    category_macro_f1: float
    urgency_accuracy: float
    urgencies: tuple[Scores, ...]
    urgency_macro_f1: float
    khan_recall: float | None  # None when the file has no khan example
    confusions: tuple[tuple[str, str, int], ...]  # gold, predicted, count; most frequent first

    def as_json(self) -> dict[str, object]:
        def table(rows: Sequence[Scores]) -> dict[str, dict[str, float | int]]:
            return {
                s.label: {"precision": _r(s.precision), "recall": _r(s.recall),
                          "f1": _r(s.f1), "support": s.support}
                for s in rows
            }

        return {
            "n": self.n,
            "accuracy": _r(self.accuracy),
            "category_macro_f1": _r(self.category_macro_f1),
            "urgency_accuracy": _r(self.urgency_accuracy),
            "urgency_macro_f1": _r(self.urgency_macro_f1),
            "khan_recall": None if self.khan_recall is None else _r(self.khan_recall),
            "categories": table(self.categories),
            "urgencies": table(self.urgencies),
            "confusions": [
                {"gold": g, "predicted": p, "count": c} for g, p, c in self.confusions
            ],
        }

    def lines(self) -> list[str]:
        out = [
            f"{self.n} examples",
            f"category accuracy   {self.accuracy:.3f}",
            f"category macro-F1   {self.category_macro_f1:.3f}",
            f"urgency accuracy    {self.urgency_accuracy:.3f}",
            f"urgency macro-F1    {self.urgency_macro_f1:.3f}",
            "khan recall         "
            + ("-" if self.khan_recall is None else f"{self.khan_recall:.3f}"),
            "",
            f"{'category':<22} {'prec':>6} {'recall':>6} {'F1':>6} {'n':>5}",
        ]
        out += [_row(s) for s in self.categories]
        out += ["", f"{'urgency':<22} {'prec':>6} {'recall':>6} {'F1':>6} {'n':>5}"]
        out += [_row(s) for s in self.urgencies]
        if self.confusions:
            out += ["", "most frequent confusions (gold → predicted):"]
            out += [f"  {c:>4}  {g} → {p}" for g, p, c in self.confusions]
        return out


def _r(x: float) -> float:
    return round(x, 4)


def _row(s: Scores) -> str:
    return f"{s.label:<22} {s.precision:>6.3f} {s.recall:>6.3f} {s.f1:>6.3f} {s.support:>5}"


def read_csv(path: str | Path) -> list[Example]:
    """The labelled rows of `path`; ConfigError names the file and line of any problem."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return _examples(csv.DictReader(f), str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except csv.Error as e:
        raise ConfigError(f"{path}: not a valid CSV file: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def _examples(reader: csv.DictReader, where: str) -> list[Example]:
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
    if missing:
        raise ConfigError(f"{where} line 1: no {missing[0]!r} column "
                          f"(the header must name {', '.join(REQUIRED)})")
    out = []
    for row in reader:
        line = reader.line_num
        if None in row or any(row.get(c) is None for c in REQUIRED):
            raise ConfigError(f"{where} line {line}: wrong number of fields")
        category, urgency = row["category"].strip(), row["urgency"].strip()
        if category not in classify.CATEGORIES:
            raise ConfigError(f"{where} line {line}: unknown category {category!r}")
        if urgency not in URGENCIES:
            raise ConfigError(f"{where} line {line}: urgency must be khan, som or thuong, "
                              f"not {urgency!r}")
        out.append(Example(line, row["text"], category, urgency))
    if not out:
        raise ConfigError(f"{where}: no labelled rows")
    return out


def per_label(gold: Sequence[str], pred: Sequence[str],
              labels: Iterable[str]) -> tuple[Scores, ...]:
    out = []
    for label in labels:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == p == label)
        n_pred = sum(1 for p in pred if p == label)
        n_gold = sum(1 for g in gold if g == label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append(Scores(label, precision, recall, f1, n_gold))
    return tuple(out)


def macro_f1(scores: Sequence[Scores]) -> float:
    return sum(s.f1 for s in scores) / len(scores) if scores else 0.0


def _present(order: Sequence[str], gold: Sequence[str], pred: Sequence[str]) -> list[str]:
    seen = set(gold) | set(pred)
    return [label for label in order if label in seen]


def evaluate(examples: Sequence[Example], lexicon: classify.Lexicon,
             strip_accents: bool = False) -> Report:
    gold_c, pred_c, gold_u, pred_u = [], [], [], []
    for ex in examples:
        text = classify.strip_accents(ex.text) if strip_accents else ex.text
        result = classify.classify_text(text, lexicon)
        gold_c.append(ex.category)
        pred_c.append(result.category)
        gold_u.append(ex.urgency)
        pred_u.append(result.urgency)
    return report(gold_c, pred_c, gold_u, pred_u)


def report(gold_c: Sequence[str], pred_c: Sequence[str], gold_u: Sequence[str],
           pred_u: Sequence[str]) -> Report:
    n = len(gold_c)
    categories = per_label(gold_c, pred_c, _present(classify.CATEGORIES, gold_c, pred_c))
    urgencies = per_label(gold_u, pred_u, _present(URGENCIES, gold_u, pred_u))
    khan = next((s for s in urgencies if s.label == "khan"), None)
    confused = Counter((g, p) for g, p in zip(gold_c, pred_c, strict=True) if g != p)
    return Report(
        n=n,
        accuracy=sum(g == p for g, p in zip(gold_c, pred_c, strict=True)) / n,
        categories=categories,
        category_macro_f1=macro_f1(categories),
        urgency_accuracy=sum(g == p for g, p in zip(gold_u, pred_u, strict=True)) / n,
        urgencies=urgencies,
        urgency_macro_f1=macro_f1(urgencies),
        khan_recall=khan.recall if khan and khan.support else None,
        confusions=tuple((g, p, c) for (g, p), c in
                         sorted(confused.items(), key=lambda kv: (-kv[1], kv[0]))[:10]),
    )
