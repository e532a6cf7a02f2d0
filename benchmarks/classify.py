"""Classification speed over the dev sets; goal: under 2 ms per message on average.

    .venv/bin/python benchmarks/classify.py [ROUNDS] [--csv FILE ...]

Classifies every text of ../shared/eval/dev.csv and dev-urgency.csv (or the
given CSVs) ROUNDS times and prints the mean milliseconds per message. As a
baseline in the same run it times only NFC-normalising and lower-casing the
same texts, and prints the ratio of the two, so a slow machine shows as a slow
baseline rather than a slow classifier. Loading the lexicon is timed apart:
it happens once per run of the daemon.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
import unicodedata
from pathlib import Path

from mailbox_processor import classify

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
DEFAULT = (EVAL / "dev.csv", EVAL / "dev-urgency.csv")


def texts(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            out += [row["text"] for row in csv.DictReader(f)]
    return out


def per_message_ms(fn, items: list[str], rounds: int) -> float:
    """Median over rounds of the mean time per item, in milliseconds."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            fn(item)
        samples.append((time.perf_counter() - start) / len(items) * 1000)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rounds", nargs="?", type=int, default=20)
    ap.add_argument("--csv", action="append", type=Path, help="labelled CSV (repeatable)")
    args = ap.parse_args()
    paths = args.csv or [p for p in DEFAULT if p.exists()]
    if not paths:
        print(f"no CSV given and {EVAL} is absent", file=sys.stderr)
        return 2
    items = texts(paths)
    start = time.perf_counter()
    lexicon = classify.load_lexicon(None)
    load_ms = (time.perf_counter() - start) * 1000

    def baseline(text: str) -> str:
        return unicodedata.normalize("NFC", text).lower()

    def plain(text: str) -> str:
        return classify.strip_accents(text)

    unaccented = [plain(t) for t in items]
    base = per_message_ms(baseline, items, args.rounds)
    full = per_message_ms(lambda t: classify.classify_text(t, lexicon), items, args.rounds)
    folded = per_message_ms(lambda t: classify.classify_text(t, lexicon), unaccented,
                            args.rounds)
    chars = statistics.mean(len(t) for t in items)
    print(f"{len(items)} messages (mean {chars:.0f} characters), {args.rounds} rounds")
    print(f"lexicon load           {load_ms:8.2f} ms (once per run)")
    print(f"baseline NFC+lower     {base:8.4f} ms/message")
    print(f"classify               {full:8.4f} ms/message  ({full / base:.0f}× baseline)")
    print(f"classify, no accents   {folded:8.4f} ms/message  ({folded / base:.0f}× baseline)")
    print(f"goal < 2 ms/message: {'met' if max(full, folded) < 2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
