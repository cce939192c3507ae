"""How identifiers are shown: masked, always, outside the vault."""

from __future__ import annotations

__all__ = ["mask_id_number", "mask_name", "mask_phone"]


def mask_phone(phone: str) -> str:
    """``13800000001`` → ``138****0001``."""
    return phone[:3] + "****" + phone[-4:]


def mask_name(name: str) -> str:
    """``张三`` → ``张*``; ``欧阳娜娜`` → ``欧***``: the family name's first character only."""
    return name[:1] + "*" * max(1, len(name) - 1)


def mask_id_number(id_number: str) -> str:
    """``430102199003071234`` → ``4301**********1234``."""
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]
