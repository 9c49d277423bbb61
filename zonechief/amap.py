"""The online geocoder: Amap (高德), asked by gis.gazetteer.geocode_address only when
the offline answer needs review. An HTTP client, so it lives here and not in gis.
"""
from __future__ import annotations

import math

import httpx

from gis.crs import gcj02_to_wgs84
from gis.gazetteer import ProviderError
from gis.geocode_result import Candidate

__all__ = ["AmapProvider"]

# Amap "level" → (kind, score). Point-like answers are trusted; areas are not.
_AMAP_LEVELS = {
    "门牌号": ("landmark", 0.9), "单元号": ("landmark", 0.9), "兴趣点": ("landmark", 0.9),
    "楼栋": ("landmark", 0.9), "道路交叉路口": ("road", 0.8), "公交站台、地铁站": ("landmark", 0.8),
    "道路": ("road", 0.6), "村庄": ("village", 0.5), "乡镇": ("town", 0.5), "热点商圈": ("landmark", 0.5),
    "开发区": ("town", 0.4), "区县": ("town", 0.3), "市": ("town", 0.2), "省": ("town", 0.1),
    "国家": ("town", 0.05), "未知": ("landmark", 0.3),
}


def _str_field(v) -> str | None:
    # Amap returns [] instead of "" for missing fields.
    return v if isinstance(v, str) and v else None


class AmapProvider:
    """Amap (高德) web-service geocoder, v3 /geocode/geo. Returns WGS-84 candidates.

    Amap answers in GCJ-02; points are converted with gis.crs.gcj02_to_wgs84.
    The key is sent only as a query parameter and never appears in errors or repr.
    """

    name = "amap"

    def __init__(self, key: str, base_url: str = "https://restapi.amap.com", city: str = "东莞", timeout: float = 5.0):
        if not key:
            raise ValueError("AmapProvider needs an API key")
        self._key = str(key)
        self.base_url = base_url.rstrip("/")
        self.city = city
        self.timeout = float(timeout)

    def __repr__(self) -> str:
        return f"AmapProvider(base_url={self.base_url!r}, city={self.city!r}, timeout={self.timeout}, key='***')"

    def _redact(self, s: str) -> str:
        return s.replace(self._key, "***") if self._key else s

    def _fail(self, msg: str):
        return ProviderError(self._redact(f"amap: {msg}"))

    def geocode(self, text: str) -> list[Candidate]:
        """Candidates for `text`, best first; [] when Amap finds nothing.

        Raises ProviderError on network errors, timeouts, HTTP errors, invalid JSON
        or an Amap error status.
        """
        text = (text or "").strip()
        if not text:
            return []
        params = {"address": text, "city": self.city, "key": self._key, "output": "JSON"}
        try:
            r = httpx.get(f"{self.base_url}/v3/geocode/geo", params=params, timeout=self.timeout)
        except httpx.TimeoutException:
            raise self._fail(f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            # `from None`: httpx errors carry the request URL, which holds the key.
            raise self._fail(f"request failed ({type(exc).__name__}: {exc})") from None
        if r.status_code != 200:
            raise self._fail(f"HTTP {r.status_code}")
        try:
            data = r.json()
        except ValueError:
            raise self._fail("response is not valid JSON") from None
        if not isinstance(data, dict):
            raise self._fail("response is not a JSON object")
        if str(data.get("status")) != "1":
            info = data.get("info") or "unknown error"
            code = data.get("infocode")
            raise self._fail(f"error {info}" + (f" (infocode {code})" if code else ""))
        out = []
        geocodes = data.get("geocodes") or []
        if not isinstance(geocodes, list):
            raise self._fail("'geocodes' is not a list")
        for g in geocodes:
            if not isinstance(g, dict):
                continue
            loc = _str_field(g.get("location"))
            if loc is None:
                continue  # no location in this entry
            try:
                glon, glat = (float(v) for v in loc.split(","))
            except ValueError:
                continue  # no usable location in this entry
            if not (math.isfinite(glon) and math.isfinite(glat)):
                continue
            lon, lat = gcj02_to_wgs84(glon, glat)
            level = _str_field(g.get("level")) or "未知"
            kind, score = _AMAP_LEVELS.get(level, ("landmark", 0.3))
            out.append(Candidate(kind=kind, name=_str_field(g.get("formatted_address")) or text, matched=text,
                                 lon=float(lon), lat=float(lat), zone_id=None, village_code=None,
                                 town=_str_field(g.get("township")), score=score))
        out.sort(key=lambda c: -c.score)
        return out
