"""A real Dovecot IMAP server for the tests."""
