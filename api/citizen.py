"""The citizen's report pages: /r/{service_code} (the QR code on a facility) and /report (anywhere).

Plain HTML forms that work without JavaScript (citizen.js and report-map.js only add to them).
A form carries a key made when it is drawn (form_key), used as the report's idempotency key:
a double tap or a resent form files one report. Bad input draws the same form again with the
message beside the field; a filed report redirects (303) to its tracking page, api/citizen_track.py.
"""
from __future__ import annotations

import math
import re
import secrets
import unicodedata
from dataclasses import dataclass, replace
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api import citizen_track
from api.auth import Caller
from api.citizen_pages import KIND_WORDS, Refused, base_url, clean_text, error_page, page, same_site_only
from api.deps import CallerDep, limit_public_submissions, services_of
from api.errors import Problem
from api.reports import read_photos
from gis.categories import categories_for_kind
from gis.service_codes import UnknownServiceCode, resolve_service_code
from store.models import Report
from zonechief.photos import Photo, PhotoError
from zonechief.reports import KeyReused, Location, Reporter, ReportError, ReportIn

__all__ = ["router", "error_page"]
router = APIRouter(include_in_schema=False)
router.include_router(citizen_track.router)

FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")  # secrets.token_urlsafe(16) is 22 characters
KEY_PREFIX = "web:"  # form keys never meet the idempotency keys API clients choose
PHONE = re.compile(r"[0-9+\-() ]{5,40}")  # after NFKC: a Chinese keyboard's full-width ０-９（）－＋ are ASCII
TEXT_FIELDS = ("category", "description", "name", "phone", "form_key", "address", "crs")
REPLAYED = ("这份表单已经提交过，内容却不同；请检查后再次提交（将作为新的反映）/ this form was already sent with other "
            "content; check it and send again (it will be a new report)")
EMPTY_PHOTO = "是空文件（0 字节），请重新选择 / is empty (0 bytes); please choose it again"
COMMON_ANYWHERE = 10  # /report offers the categories most reported anywhere first
CRSES = ("wgs84", "gcj02")  # GPS, or a point copied from WeChat / Amap
CODE_SHAPE = re.compile(r"[A-Za-z0-9_.-]{1,40}")  # what a service code on a sign can look like
GPS_FIELD = "photo_gps_{}"  # citizen.js: photo N's EXIF position, "lon,lat" (WGS-84), read before it re-encodes it


@dataclass
class Place:
    """The facility a QR code names, as the form shows it."""

    code: str
    name: str
    kind: str
    kind_zh: str
    kind_en: str
    zone_id: str | None
    zone_name: str | None
    town: str | None
    chief: object | None = None  # gis.roster.Person


# ------------------------------------------------------------------ what the pages show
def zone_staff(services, zone_id: str | None):
    """(zone name, chief in force) of a zone; (None, None) without one."""
    if not zone_id:
        return None, None
    z = services.index.zones
    names = z.loc[z.zone_id == zone_id, "name"]
    roster = services.index.roster
    chief = roster.chiefs_by_zone().get(zone_id) if roster is not None else None
    return (str(names.iloc[0]) if len(names) else None), chief


def find_place(services, code: str) -> Place:
    """The facility with this service code; a 404 (bilingual) when there is none."""
    try:
        g = resolve_service_code(code, services.facilities)
    except UnknownServiceCode:
        # Echoed only when it looks like a code: a crafted link must not put its own words on an official page.
        shown = code if CODE_SHAPE.fullmatch(code) else "?"
        raise Problem(404, f"没有找到城市服务码 {shown}，请核对设施上的号码，或在地图上反映问题 / no facility has the city "
                           f"service code {shown}; check the code on the sign, or report on the map at /report") from None
    f = services.facilities
    row = f[f.facility_id == g.facility_id].iloc[0]
    kind = str(row.get("kind") or "")
    zh, en = KIND_WORDS.get(kind, ("设施", kind or "facility"))
    zone_id = g.zone_id or (services.index.lookup(g.lon, g.lat).zone_id if g.lon is not None else None)
    zone_name, chief = zone_staff(services, zone_id)
    return Place(str(row["service_code"]), g.candidates[0].name if g.candidates else str(row["facility_id"]), kind, zh, en,
                 zone_id, zone_name, str(row.get("town") or "") or None, chief)


_CHOICES: dict[tuple[int, str | None], tuple] = {}  # (id of the categories, kind) → (the categories, choices)


def category_choices(services, kind: str | None) -> tuple[list, list]:
    """(common (code, name) pairs first, [(major name, [(code, name)...])...] the whole catalogue by major)."""
    cats = services.categories
    hit = _CHOICES.get((id(cats), kind))
    if hit is None or hit[0] is not cats:  # worked out once per kind: ~9 ms of pandas on each QR scan otherwise
        hit = _CHOICES[(id(cats), kind)] = (cats, _choices(cats, kind))
    return hit[1]


def _choices(cats, kind: str | None) -> tuple[list, list]:
    if kind:
        ranked = categories_for_kind(kind, cats)
        common = ranked[ranked["common"]]
    else:  # no facility: the codes most reported anywhere (their weight in the catalogue)
        common = cats.sort_values("demo_weight", ascending=False, kind="stable").head(COMMON_ANYWHERE)
    groups: dict[str, list] = {}
    for code, major, name in zip(cats["code"], cats.get("major_name", cats["code"].str[:2]), cats["name"]):
        groups.setdefault(str(major), []).append((code, name))
    return list(zip(common["code"], common["name"])), list(groups.items())


def form_page(request: Request, place: Place | None, values: dict | None = None, refused: Refused | None = None,
              photos_sent: bool = False) -> Response:
    """The report form (for a facility, or for anywhere), with what was typed and the messages."""
    services = services_of(request)
    s = services.settings
    values = dict(values or {})
    if not FORM_KEY.fullmatch(values.get("form_key") or ""):
        values["form_key"] = secrets.token_urlsafe(16)
    common, groups = category_choices(services, place.kind if place else None)
    return page(request, "report.html", refused.status if refused else 200, place=place, values=values,
                errors=refused.errors if refused else {}, common=common, groups=groups,
                photos_again=bool(refused) and photos_sent, max_photos=s.max_photos, max_bytes=s.max_photo_bytes,
                max_mb=round(s.max_photo_bytes / 1_048_576, 1),
                action=base_url(request) + (f"/r/{quote(place.code, safe='')}" if place else "/report"))


# ------------------------------------------------------------------ checking and filing
def _location(v: dict, errors: dict) -> tuple[Location | None, str]:
    """Where a /report form says: coordinates (from the phone or the map), or an address."""
    if v["lon"] or v["lat"]:
        try:
            lon, lat = float(v["lon"]), float(v["lat"])
            if not (math.isfinite(lon) and math.isfinite(lat)):
                raise ValueError
        except ValueError:
            errors["location"] = "经度和纬度须为数字 / longitude and latitude must be numbers"
            return None, "gps"
        crs = v["crs"] or "wgs84"
        if crs not in CRSES:
            errors["location"] = f"坐标系须为 {' 或 '.join(CRSES)} / the coordinate system must be {' or '.join(CRSES)}"
            return None, "gps"
        return Location(lon=lon, lat=lat, crs=crs), "gps"
    if v["address"]:
        if len(v["address"]) > 500:
            errors["location"] = "地址最多 500 字 / an address has at most 500 characters"
            return None, "address"
        return Location(address=v["address"]), "address"
    errors["location"] = "请用“我的位置”或在地图上点选位置，或填写地址 / use your location, tap the map, or type an address"
    return None, "address"


def _check(v: dict, codes: set) -> dict:
    """Messages for the text fields, by field."""
    errors = {}
    if not v["category"]:
        errors["category"] = "请选择问题类型 / please choose what the problem is"
    elif v["category"] not in codes:
        errors["category"] = f"没有这个问题类型 {v['category']} / unknown category {v['category']!r}; please choose one from the list"
    if len(v["description"]) > 2000:
        errors["description"] = f"问题描述最多 2000 字（现在 {len(v['description'])} 字）/ at most 2000 characters"
    if v["phone"] and not (PHONE.fullmatch(v["phone"]) and sum(c.isdigit() for c in v["phone"]) >= 5):
        errors["phone"] = "电话号码只能有数字、+、-、括号和空格 / a phone number has digits, + - ( ) and spaces only"
    if len(v["name"]) > 100:
        errors["name"] = "称呼最多 100 字 / a name has at most 100 characters"
    return errors


def client_position(text: str) -> tuple[float, float] | None:
    """(lon, lat) from a photo_gps_N field ("lon,lat", WGS-84 degrees); None unless two finite numbers in range."""
    parts = text.split(",") if 0 < len(text) <= 64 else []
    if len(parts) != 2:
        return None
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90) or lon == lat == 0:
        return None  # 0,0 is what some phones write without a fix (as zonechief.photos.exif_position)
    return lon, lat


def with_client_positions(photos: list[Photo], gps: list[str]) -> list[Photo]:
    """The photos, each without an EXIF position of its own given the one the page read from it (gps[i], if sane).

    citizen.js re-encodes a large photo before sending it, which drops its EXIF; it sends the position it read
    beside it, so the staff note on a photo taken far away still works. Trusting it is no weaker than trusting
    EXIF, which the client controls just as much, and it only ever produces a note for staff: it never moves a report.
    """
    out = []
    for p, text in zip(photos, gps + [""] * len(photos)):
        got = client_position(text) if p.exif_lon is None else None
        out.append(replace(p, exif_lon=got[0], exif_lat=got[1]) if got else p)
    return out


def file_report(services, caller: Caller, v: dict, files: list, place: Place | None,
                gps: list[str] | None = None) -> Report | Refused:
    """Check the form, read its photos and file the report (blocking: run in a worker thread).

    `gps` is the photo_gps_N fields in order (see with_client_positions)."""
    errors = _check(v, set(services.categories["code"]))
    if place is not None:
        where, source = Location(service_code=place.code), "service_code"
    else:
        where, source = _location(v, errors)
    if errors or where is None:
        return Refused(422, errors)
    key = v["form_key"] if FORM_KEY.fullmatch(v["form_key"]) else None
    reporter = Reporter(name=v["name"] or None, phone=v["phone"] or None) if v["name"] or v["phone"] else None
    try:
        data = ReportIn(source=source, category=v["category"], description=v["description"], location=where,
                        reporter=reporter, idempotency_key=KEY_PREFIX + key if key else None)
    except ValidationError as exc:  # the checks above should catch everything; name the field if not
        return Refused(422, {str(e["loc"][-1]) if e["loc"] else "form": e["msg"] for e in exc.errors()})
    s = services.settings
    # A named file of 0 bytes is a photo the phone failed to read (an unnamed one is the empty input: skipped).
    empty = next((f"照片 {i}（{f.filename}）{EMPTY_PHOTO}" for i, f in enumerate(files, 1) if f.filename and not f.size), None)
    if empty:
        return Refused(422, {"photo": empty})
    try:
        photos = with_client_positions(read_photos(files, s.max_photos, s.max_photo_bytes), gps or [])
    except PhotoError as exc:
        return Refused(exc.status, {"photo": str(exc)})
    try:
        report, _ = services.reports.create(data, actor=caller.actor, photos=photos)
    except KeyReused:
        # The key of a form already sent, with other content: not a double tap (zonechief.reports decides);
        # a new key is drawn instead.
        v["form_key"] = ""
        return Refused(409, {"form": REPLAYED})
    except ReportError as exc:
        return Refused(422, {"location" if place is None else "form": str(exc)})
    return report


async def submit(request: Request, caller: Caller, place: Place | None) -> Response:
    """Read the posted form, file it, and answer: the tracking page (303), or the form again."""
    services = services_of(request)
    form = await request.form(max_files=services.settings.max_photos + 10, max_fields=40)
    try:
        v = {k: clean_text(str(form.get(k) or "")).strip() for k in TEXT_FIELDS}
        v["phone"] = unicodedata.normalize("NFKC", v["phone"]).strip()
        # lon/lat may come twice (the map's hidden fields and typed ones): the first that has a value.
        for k in ("lon", "lat"):
            v[k] = next((str(x).strip() for x in form.getlist(k) if str(x).strip()), "")
        files = [f for f in form.getlist("photo") if isinstance(f, UploadFile)]
        gps = [str(form.get(GPS_FIELD.format(i)) or "").strip() for i in range(1, services.settings.max_photos + 1)]
        got = await run_in_threadpool(file_report, services, caller, v, files, place, gps)
    finally:
        await form.close()
    if isinstance(got, Refused):
        return form_page(request, place, v, got, photos_sent=any(f.filename or f.size for f in files))
    return RedirectResponse(f"{base_url(request)}/t/{got.tracking_token}?filed=1", status_code=303)


# ------------------------------------------------------------------ routes
@router.get("/r/{code:path}")  # a code with a slash arrives decoded (QR links quote it as %2F)
def code_form(code: str, request: Request):
    """The report form of the facility whose QR code this is."""
    return form_page(request, find_place(services_of(request), code))


@router.post("/r/{code:path}", dependencies=[Depends(same_site_only), Depends(limit_public_submissions)])
async def code_submit(code: str, request: Request, caller: CallerDep):
    """File a report at the facility of this code."""
    place = await run_in_threadpool(find_place, services_of(request), code)
    return await submit(request, caller, place)


@router.get("/report")
def anywhere_form(request: Request):
    """The report form for a place without a code: the phone's position, a tap on the map, or an address."""
    return form_page(request, None)


@router.post("/report", dependencies=[Depends(same_site_only), Depends(limit_public_submissions)])
async def anywhere_submit(request: Request, caller: CallerDep):
    """File a report at the position or address given."""
    return await submit(request, caller, None)
