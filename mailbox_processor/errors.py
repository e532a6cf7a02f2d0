"""The three kinds of failure, and what the caller does with each.

Library exceptions are caught at the edge that calls the library and turned
into one of these, so the rest of the program only ever sees three types.
"""


class MailboxError(Exception):
    """Base class of every error this program raises on purpose."""


class ConfigError(MailboxError):
    """Bad configuration or input from the operator: stop, exit 2.

    The message names the file and the key and says what was expected.
    """


class TransientError(MailboxError):
    """Network or server trouble: retry later with backoff; exit 1 from one-shot commands."""


class LoginRefused(TransientError):
    """The server refused the credentials: retrying goes on, but only a person can fix it
    (a changed password, an expired OAuth token), so someone must be told at once."""


class MessageError(MailboxError):
    """This one message cannot be processed: quarantine it and go on with the others.

    `kind` is a short machine-readable label stored with the quarantined mail
    (e.g. "parse", "too-large", "timeout"); the message text must never quote
    citizen content, because it ends up in logs.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Pickled between worker processes: rebuild from kind and detail, not the text.
        return (MessageError, (self.kind, self.detail))
