"""Text as the gazetteer compares it: one canonical form for place names and queries."""
from __future__ import annotations

import math
import re
import unicodedata

_PREFIXES = ("广东省", "广东", "东莞市", "东莞")

_cc = None


def _t2s(text: str) -> str:
    global _cc
    if _cc is None:
        from opencc import OpenCC

        _cc = OpenCC("t2s")
    try:
        return _cc.convert(text)
    except Exception:  # pragma: no cover - OpenCC is pure Python; never let it break geocoding
        return text


def normalize_text(text) -> str:
    """Canonical form used on both the gazetteer's names and the query.

    NFKC (full-width → half-width), traditional → simplified (OpenCC t2s),
    lower case, only letters and digits kept (spaces and punctuation dropped),
    leading 广东省/广东/东莞市/东莞 removed.
    """
    if text is None:
        return ""
    s = unicodedata.normalize("NFKC", str(text))
    s = _t2s(s)
    s = "".join(ch for ch in s.lower() if unicodedata.category(ch)[0] in "LN")
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if s.startswith(p):
                s = s[len(p):]
                changed = True
    return s


def numbers_in(s: str) -> list[int]:
    """The numbers written in s, by value."""
    # 公厕1 and 公厕01 are the same facility; 公厕01 and 公厕02 are not.
    return [int(n) for n in re.findall(r"\d+", s)]


def none_if_blank(v) -> str | None:
    """A data cell as stripped text, or None when it is missing, NaN or blank."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v).strip()
    return s or None
