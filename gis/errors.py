"""The base of every error zonechief raises on purpose.

Each layer subclasses `ZonechiefError` for what can go wrong there (a coordinate
out of range, an unknown CRS, a report that cannot be filed...). The message is
written for the person who sent the input. api/errors.py maps each kind to one
HTTP status in a single table; nothing else catches them one by one.
"""
from __future__ import annotations


class ZonechiefError(Exception):
    """An input or state zonechief refuses; str(err) says why, for the user."""
