"""Passwords out of text: what logs and error messages may say about a URL or a DSN.

``redact`` masks the password of every ``scheme://user:password@host`` URL in a text (an
SQLAlchemy URL, an HTTP URL with credentials, a libpq URI) and every ``password=...``
key/value (libpq DSN, query string). It is applied to whatever reaches a log or an answer
from the tracking and database edges.
"""

from __future__ import annotations

import re

__all__ = ["redact", "MASK"]

MASK = "***"
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/@:'\"]*:)[^\s/'\"]+@")
_KEY_VALUE = re.compile(r"((?:password|passwd|pwd)\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)", re.I)


def redact(text: object) -> str:
    """``str(text)`` with every password in a URL or a ``password=`` pair replaced by ``***``."""
    out = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", str(text))
    return _KEY_VALUE.sub(rf"\g<1>{MASK}", out)
