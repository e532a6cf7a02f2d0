"""PLACEHOLDER — replaced by the parse stage of issue 3."""

from __future__ import annotations

import unicodedata

import mailparser

from .config import Parse
from .errors import MessageError
from .models import Parsed, SenderIdentity


def parse(raw: bytes, limits: Parse) -> Parsed:
    try:
        m = mailparser.parse_from_bytes(raw)
    except Exception as e:  # noqa: BLE001
        raise MessageError("parse", type(e).__name__) from None
    body = "\n".join(m.text_plain) or "\n".join(m.text_html)
    return Parsed(
        subject=unicodedata.normalize("NFC", m.subject or ""),
        text=unicodedata.normalize("NFC", body),
        parts=(),
        headers={},
        identity=SenderIdentity(),
    )
