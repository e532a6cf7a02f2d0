"""Urgent alerts: every `khan` submission reaches the leaders within minutes, not tomorrow.

The daemon calls `send_pending(config, store)` every ~30 s; whatever became
urgent since the last call goes out as one batched mail. Items are marked
alerted only after the SMTP server accepted the mail, so a failure means a
retry on the next call, never a lost alert; a crash between acceptance and
marking means the same alert once more (at least once, which for a fire is
the right side to err on). The items still appear in the next digest, marked
"đã báo khẩn".
"""

from __future__ import annotations

import logging

from . import digest, mail
from .config import Config
from .errors import ConfigError, TransientError
from .store import Store, now_utc

log = logging.getLogger(__name__)

# One mail holds at most this many; more wait for the next call (30 s later).
BATCH = 50


def send_pending(config: Config, store: Store) -> int:
    """Send one alert for every urgent submission not yet alerted; return how many it covered.

    Raises TransientError when the SMTP server cannot be reached or refuses, or
    its settings are unusable (nothing is marked; call again later). Never
    anything else for SMTP trouble, so the daemon's intake loop goes on. Returns 0 when alerts are disabled
    or there is no [smtp] section or no recipient.
    """
    if not config.alerts.enabled or config.smtp is None or not config.alert_recipients:
        return 0
    rows = store.unalerted_urgent(limit=BATCH)
    if not rows:
        return 0
    entries = [digest.entry(config, row, alerted=False) for row in rows]
    created = now_utc()
    when = digest.local_time(created, config.mailbox.timezone, config.digest.language)
    rendered = digest.render_alert(config, entries, when)
    msg = digest.new_message(
        config, rendered, mail.message_id(config, "alert"), created, config.alert_recipients
    )
    msg["Importance"] = "high"
    msg["X-Priority"] = "1"
    try:
        mail.send(config, msg, to=config.alert_recipients)
    except ConfigError as e:
        # E.g. the SMTP password file went missing: intake must go on, so the daemon
        # logs this every round instead of stopping; `check` reports it as a config error.
        raise TransientError(f"alert not sent: {e}") from None
    refs = [row.ref for row in rows]
    store.mark_alerted(refs)
    log.info("alert sent for %d urgent item(s): %s", len(refs), " ".join(refs))
    return len(refs)
