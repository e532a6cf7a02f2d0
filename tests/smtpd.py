"""Real aiosmtpd servers for the tests (owned by the digest work, issue 5)."""
