"""Hòm thư số: a confidential feedback mailbox for ward Fatherland Front committees."""

__version__ = "0.1.0"
