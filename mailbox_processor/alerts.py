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

import functools
import logging
import time
from email.message import EmailMessage

from . import digest, mail
from .config import Config
from .errors import ConfigError, LoginRefused, TransientError
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


class IntakeWatch:
    """Tells the operators when `run` cannot reach the mailbox, and again when it can.

    A refused login is told at once: only a person can fix a changed password or
    an expired OAuth token, and intake would otherwise stop without anyone
    noticing (field notes: ten days, in one deployment). Other connection
    failures are told once they have lasted [alerts] intake_down_minutes.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.since: float | None = None  # monotonic start of the current outage
        self.since_utc = ""
        self.told = False

    def failed(self, error: TransientError) -> None:
        if self.since is None:
            self.since, self.since_utc = time.monotonic(), now_utc()
        long_enough = time.monotonic() - self.since >= self.config.alerts.intake_down_minutes * 60
        if not self.told and (isinstance(error, LoginRefused) or long_enough):
            self.told = self._tell(str(error), login=isinstance(error, LoginRefused))

    def connected(self) -> None:
        if self.told:
            self._tell("", login=False, recovered=True)
        self.since, self.told = None, False

    def _tell(self, reason: str, *, login: bool, recovered: bool = False) -> bool:
        """Send the notice; False (to try again at the next failure) when it could not go."""
        to = self.config.operator_recipients
        if self.config.smtp is None or not to:
            return False
        try:
            mail.send(self.config, self._message(reason, login, recovered), to=to)
        except (TransientError, ConfigError) as e:
            log.warning("could not tell the operators that intake %s: %s",
                        "is back" if recovered else "stopped", e)
            return False
        log.info("told the operators that intake %s", "is back" if recovered else "stopped")
        return True

    def _message(self, reason: str, login: bool, recovered: bool) -> EmailMessage:
        c = self.config
        lang = c.digest.language
        local = functools.partial(digest.local_time, tz=c.mailbox.timezone, lang=lang)
        text = digest.environment().get_template(digest.template_name("intake", "txt", lang)).render(
            recovered=recovered, login=login, reason=reason, mailbox=c.imap.username or
            c.mailbox.address, host=c.imap.host, since=local(self.since_utc),
            now=local(now_utc()), committee=c.mailbox.name)
        if lang == "en":
            subject = "Hòm thư số: receiving mail again" if recovered else \
                "[ATTENTION] Hòm thư số is not receiving mail"
        else:
            subject = "Hòm thư số: đã nhận thư trở lại" if recovered else \
                "[CHÚ Ý] Hòm thư số không nhận được thư mới"
        return digest.new_message(c, digest.Rendered(subject=subject, html="", text=text),
                                  mail.message_id(c, "intake"), now_utc(), c.operator_recipients)
