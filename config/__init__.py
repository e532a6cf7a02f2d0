"""Default files shipped with mailbox-processor (installed as mailbox_processor.defaults)."""
