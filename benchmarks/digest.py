"""Render and inline a digest of 5,000 items; goal: under 1 s.

    .venv/bin/python benchmarks/digest.py [N]

Prints the time to group and count (assemble), to render the templates
without inlining (the baseline, same run), to render and inline with
css-inline, and the ratio of the two. Items are varied Vietnamese text of
200-1,500 characters across every category, urgency and three places; no
store and no network are involved.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from mailbox_processor import config as config_mod
from mailbox_processor import digest
from mailbox_processor.store import Row

WORDS = (
    "đường", "ngõ", "phố", "ngập", "úng", "cống", "thoát", "nước", "rác", "thải", "tiếng", "ồn",
    "karaoke", "đèn", "chiếu", "sáng", "vỉa", "hè", "lấn", "chiếm", "trường", "học", "y", "tế",
    "giá", "điện", "thủ", "tục", "hồ", "sơ", "cán", "bộ", "công", "an", "trật", "tự", "cây",
    "xanh", "công", "viên", "nhà", "văn", "hóa", "người", "dân", "đề", "nghị", "phường", "kiểm",
    "tra", "xử", "lý", "sớm",
)


def rows(n: int, seed: int = 5) -> list[tuple[Row, bool]]:
    rnd = random.Random(seed)
    cats = list(digest.CATEGORIES)
    out = []
    for i in range(n):
        length = rnd.randint(30, 220)
        text = " ".join(rnd.choice(WORDS) for _ in range(length))[:1500]
        urgency = rnd.choices(("khan", "som", "thuong"), (1, 4, 15))[0]
        out.append((Row(
            ref=f"HT-{i:05d}", date="2026-12-01", location=("tdp1", "tdp3", "nvh")[i % 3],
            category=cats[i % len(cats)], urgency=urgency, status="new", flags=(),
            quarantined=False, error_kind=None, text=f"{i}: {text}", images=(), withheld=(),
            confidence=0.8, cues=(),
        ), urgency == "khan"))
    return out


def config() -> config_mod.Config:
    return config_mod.parse({
        "mailbox": {"address": "hopthu@phuong.example.vn", "name": "Ủy ban MTTQ phường Ngọc Sơn"},
        "imap": {"host": "127.0.0.1", "port": 1, "security": "none"},
        "digest": {"to": ["chutich@phuong.example.vn"]},
        "store": {"path": "/nonexistent/store.sqlite3"},
        "privacy": {},
        "locations": [{"slug": "tdp1", "name": "Tổ dân phố 1"},
                      {"slug": "tdp3", "name": "Tổ dân phố 3"},
                      {"slug": "nvh", "name": "Nhà văn hóa"}],
    }, Path("benchmark.toml"))


def best_of(runs: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    cfg, data = config(), rows(n)
    t_build, d = best_of(3, lambda: digest.assemble(
        cfg, data, [], [], "2026-12-01T00:00:00+00:00", None, None))
    digest.render(d)  # warm the template cache
    t_plain, plain = best_of(3, lambda: digest.render(d, inline=False))
    t_inline, inlined = best_of(3, lambda: digest.render(d, inline=True))
    print(f"items: {n}  entries after grouping: {sum(1 for _ in d.entries())}")
    print(f"assemble (group, count):   {t_build:.3f} s")
    print(f"render without inlining:   {t_plain:.3f} s  ({len(plain.html.encode()) / 1e6:.1f} MB)")
    print(f"render and inline:         {t_inline:.3f} s  ({len(inlined.html.encode()) / 1e6:.1f} MB)")
    print(f"ratio inline / baseline:   {t_inline / t_plain:.2f}x")
    print(f"goal (render + inline < 1 s): {'met' if t_inline < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
