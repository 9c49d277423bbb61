"""QR codes of the facilities' city service codes (城市服务码), and a printable A4 sheet of them.

A code's content is the public URL of the facility's report page, `{public_url}/r/{service_code}`;
the page itself is served elsewhere. Every code is a full QR symbol (never Micro QR, which phone
cameras do not read), error correction M or better, with the standard 4-module quiet zone.
"""
from __future__ import annotations

import html
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import segno

__all__ = ["FacilityCard", "KINDS", "PublicUrlError", "check_public_url", "facility_cards", "kind_label", "qr_png",
           "qr_svg", "report_url", "sheet_html", "CARDS_PER_PAGE"]

# kind → (Chinese, English), as printed on the cards; unknown kinds are shown as given.
KINDS = {
    "public_toilet": ("公共厕所", "Public toilet"),
    "chengguan_station": ("城管驿站", "City-management station"),
    "community_service_station": ("社区服务站", "Community service station"),
}
QUIET_ZONE = 4  # modules: the minimum ISO/IEC 18004 asks for
COLUMNS, ROWS = 2, 3
CARDS_PER_PAGE = COLUMNS * ROWS


class PublicUrlError(ValueError):
    """A public URL a phone could not use as the base of report links."""


def check_public_url(url: str) -> str:
    """`url` as the base of report links (http or https, a host, no query or fragment), without a trailing slash."""
    u = urlsplit(str(url).strip())
    if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment or any(c.isspace() for c in url.strip()):
        raise PublicUrlError(f"{url!r} is not a public base URL; give e.g. https://zc.example.cn (http or https, "
                             "a host, no query or fragment)")
    return url.strip().rstrip("/")


def is_loopback(url: str) -> bool:
    """True when `url` points at this machine only (127.x, localhost, ::1): phones cannot follow it."""
    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"


def report_url(public_url: str, service_code: str) -> str:
    """The report page of a facility: `{public_url}/r/{service_code}`, the code percent-encoded as one path segment."""
    return f"{public_url.rstrip('/')}/r/{quote(str(service_code), safe='')}"


def _qr(url: str) -> segno.QRCode:
    # boost_error: the highest level that fits the same version, never below M.
    return segno.make(url, error="m", boost_error=True, micro=False)


def qr_svg(url: str, scale: int = 4, *, standalone: bool = True) -> str:
    """The QR code of `url` as SVG with its quiet zone; standalone: an XML document (else an element for inline HTML)."""
    qr, buf = _qr(url), io.BytesIO()
    if standalone:
        qr.save(buf, kind="svg", scale=scale, border=QUIET_ZONE, xmldecl=True, svgns=True, title="QR " + url,
                encoding="utf-8")
        return buf.getvalue().decode("utf-8")
    return qr.svg_inline(scale=1, border=QUIET_ZONE, omitsize=True, svgclass="qr", lineclass=None)


def qr_png(url: str, scale: int = 8) -> bytes:
    """The QR code of `url` as a PNG, `scale` pixels per module, with its quiet zone."""
    buf = io.BytesIO()
    _qr(url).save(buf, kind="png", scale=scale, border=QUIET_ZONE)
    return buf.getvalue()


def kind_label(kind: str) -> tuple[str, str]:
    """(Chinese, English) name of a facility kind; an unknown kind as given, with no English."""
    return KINDS.get(kind, (str(kind), ""))


@dataclass(frozen=True)
class FacilityCard:
    """What one printed card says about a facility: its code, what and where it is, and who answers for it."""

    service_code: str
    name: str
    kind: str
    town: str
    zone_id: str
    zone_name: str
    chief_name: str | None
    chief_phone: str | None

    @property
    def kind_zh(self) -> str:
        """The kind in Chinese (or as given, if unknown)."""
        return kind_label(self.kind)[0]

    @property
    def kind_en(self) -> str:
        """The kind in English ('' if unknown)."""
        return kind_label(self.kind)[1]

    @property
    def chief_line(self) -> str:
        """'片长 {name} 电话 {phone}' of the chief in force, or a note that the zone has none."""
        if not self.chief_name:
            return "片长 暂缺"
        return f"片长 {self.chief_name} 电话 {self.chief_phone or '—'}"


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def facility_cards(index, facilities, day=None) -> list[FacilityCard]:
    """A card per facility (in the layer's order), with the chief in force on `day` (default today) in its zone."""
    chiefs = index.roster.chiefs_by_zone(day) if index.roster is not None else {}
    zone_names = dict(zip(index.zones.zone_id, index.zones.name))
    cards = []
    for r in facilities.itertuples():
        zone = _text(r.zone_id)
        chief = chiefs.get(zone)
        cards.append(FacilityCard(
            service_code=_text(r.service_code), name=_text(getattr(r, "name", None)) or _text(r.facility_id),
            kind=_text(r.kind), town=_text(getattr(r, "town", None)), zone_id=zone, zone_name=zone_names.get(zone, ""),
            chief_name=chief.name if chief else None, chief_phone=chief.phone if chief else None))
    return cards


# ------------------------------------------------------------------ the printable sheet
_CSS = """
@page { size: A4; margin: 10mm; }
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; }
body { font-family: "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC", sans-serif;
       color: #000; background: #fff; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.page { height: 276mm; display: flex; flex-direction: column; break-after: page; overflow: hidden; }
.page:last-child { break-after: auto; }
.head { font-size: 10pt; display: flex; justify-content: space-between; height: 7mm; }
.grid { flex: 1; display: grid; grid-template-columns: repeat(2, 1fr); grid-template-rows: repeat(3, 85mm);
        gap: 3mm; align-content: start; }
.card { border: 0.3mm dashed #888; padding: 2.5mm 3mm; display: flex; flex-direction: column; align-items: center;
        text-align: center; break-inside: avoid; page-break-inside: avoid; overflow: hidden; }
.name { font-size: 13pt; font-weight: bold; line-height: 1.2; }
.kind { font-size: 9pt; color: #333; }
svg.qr { width: 44mm; height: 44mm; margin: 1mm 0 0.5mm; shape-rendering: crispEdges; }
svg.qr path { stroke: #000; }
.url { font-family: "DejaVu Sans Mono", monospace; font-size: 6.5pt; word-break: break-all; color: #333; }
.scan { font-size: 11pt; font-weight: bold; margin-top: 1mm; }
.meta { font-size: 8pt; line-height: 1.35; color: #222; }
.en { color: #555; font-weight: normal; }
.foot { font-size: 7pt; color: #666; height: 6mm; padding-top: 1mm; }
"""


def _card_html(card: FacilityCard, public_url: str) -> str:
    e = html.escape
    url = report_url(public_url, card.service_code)
    kind = e(card.kind_zh) + (f' <span class="en">{e(card.kind_en)}</span>' if card.kind_en else "")
    zone = " ".join(p for p in (e(card.zone_id), e(card.zone_name)) if p)
    return (f'<div class="card">'
            f'<div class="name">{e(card.name)}</div>'
            f'<div class="kind">{kind}</div>'
            f'{qr_svg(url, standalone=False)}'
            f'<div class="url">{e(url)}</div>'
            f'<div class="scan">扫码反映问题 <span class="en">/ Scan to report a problem</span></div>'
            f'<div class="meta">城市服务码 <span class="en">City service code</span> {e(card.service_code)}</div>'
            f'<div class="meta">{e(card.town)} · 片区 <span class="en">Zone</span> {zone}</div>'
            f'<div class="meta">{e(card.chief_line)} <span class="en">(zone chief · tel.)</span></div>'
            f'</div>')


def _chunks(items: Sequence, n: int) -> Iterable[Sequence]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def sheet_html(cards: Sequence[FacilityCard], public_url: str, title: str = "城市服务码 City service codes") -> str:
    """One self-contained printable HTML page (inline SVG and CSS, nothing fetched): A4 pages of 2×3 cards."""
    e = html.escape
    pages = list(_chunks(list(cards), CARDS_PER_PAGE)) or [[]]
    foot = ("设施名称、片区与片长来自 zonechief 的数据（随附地理数据仅作示意）。"
            '<span class="en"> Names, zones and chiefs are from zonechief\'s data (the shipped geography is '
            "illustrative).</span>")
    body = []
    for i, page in enumerate(pages, 1):
        body.append(f'<section class="page"><div class="head"><span>{e(title)}</span>'
                    f'<span>第 {i}/{len(pages)} 页 <span class="en">page {i} of {len(pages)}</span></span></div>'
                    f'<div class="grid">{"".join(_card_html(c, public_url) for c in page)}</div>'
                    f'<div class="foot">{foot}</div></section>')
    return (f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
            f'<title>{e(title)}</title><style>{_CSS}</style></head>'
            f'<body>{"".join(body)}</body></html>\n')
