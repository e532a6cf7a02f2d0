"""PLACEHOLDER — replaced by the anonymise stage of issue 3."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from pathlib import Path

from .config import Config
from .errors import ConfigError
from .models import Parsed, Submission


def load_pepper(path: str) -> bytes:
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    try:
        return p.read_bytes()
    except OSError as e:
        raise ConfigError(f"privacy.pepper_file {p}: cannot read: {e.strerror}") from None


def anonymise(
    parsed: Parsed, *, ref: str, received_on: dt.date, config: Config, pepper: bytes
) -> Submission:
    mac = hmac.new(pepper, parsed.identity.from_.lower().encode(), hashlib.sha256).hexdigest()
    return Submission(
        ref=ref,
        received_on=received_on,
        location=None,
        text=(parsed.subject + "\n\n" + parsed.text).strip(),
        pseudonym="CD-" + mac[:6].upper(),
    )
