"""Small HTML helpers shared by the report's sections."""

from __future__ import annotations


def element_id(name: str) -> str:
    """``name`` as an HTML id (letters and digits kept, everything else a hyphen)."""
    return "".join(c if c.isalnum() else "-" for c in name)
