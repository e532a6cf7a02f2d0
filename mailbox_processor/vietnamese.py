"""Accent folding for Vietnamese text, shared by the classifier and the anonymiser."""

from __future__ import annotations

import unicodedata


def _fold_table() -> dict[int, str]:
    # Built from Unicode itself so every precomposed Vietnamese letter is covered;
    # đ/Đ have no decomposition and are mapped by hand (NOTES: Vietnamese text).
    table: dict[int, str] = {ord("đ"): "d", ord("Đ"): "D"}
    for cp in range(0xC0, 0x1EFF + 1):
        base = "".join(
            c for c in unicodedata.normalize("NFD", chr(cp)) if not unicodedata.combining(c)
        )
        if base != chr(cp) and len(base) == 1 and base.isascii():
            table[cp] = base
    return table


FOLD = _fold_table()


def fold_chars(text: str) -> str:
    """Diacritics off precomposed letters, one character for one, so spans map back."""
    return text.translate(FOLD)
