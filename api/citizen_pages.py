"""The citizen's pages: templates (api/templates, autoescaped), the words they share, and the error page.

Errors on the citizen's paths are answered from the one table (api.errors.resolve) as a
friendly bilingual page instead of problem+json; api/app.py hands `error_page` to errors.install.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.deps import services_of
from api.errors import SECURITY_HEADERS, TITLES, Answer, Problem
from api.middleware import html_csp
from gis.localtime import LOCAL

log = logging.getLogger("zonechief.api")
TEMPLATES = Path(__file__).resolve().parent / "templates"
# Pages that change (a form with its own key, a report's status) are never cached.
NO_STORE = {"Cache-Control": "no-store"}
# A tracking link is a credential: a crawler that meets one (a shared chat) must not list it.
NO_INDEX = {"X-Robots-Tag": "noindex, nofollow, noarchive"}
# C0 and C1 controls but tab and line feed: PostgreSQL text cannot hold NUL, and the rest only garble a page.
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
CROSS_SITE = ("不能从其他网站提交这个表单，请打开本站页面再提交 / this form cannot be sent from another site's page; "
              "open the page on this site and send it there")

# facility kind → (Chinese, English)
KIND_WORDS = {
    "public_toilet": ("公共厕所", "public toilet"),
    "chengguan_station": ("城管驿站", "city management station"),
    "community_service_station": ("社区服务站", "community service station"),
}
# status → what the error page says first (Chinese, English)
ERROR_WORDS = {
    400: ("请求有误", "The request could not be read"),
    401: ("需要登录", "Sign-in needed"),
    403: ("不能这样提交", "Not allowed"),
    404: ("没有找到", "Not found"),
    405: ("不支持这种请求", "Not allowed"),
    409: ("现在不能这样做", "Not possible now"),
    413: ("内容太大", "Too large"),
    415: ("不支持的文件", "Unsupported file"),
    422: ("内容有误", "Please check what you sent"),
    429: ("提交太频繁", "Too many reports"),
    502: ("外部服务暂时不可用", "An outside service is unavailable"),
    503: ("服务暂时不可用", "Temporarily unavailable"),
}
SERVER_ERROR = ("服务器出错了，我们已记录", "Server error; it has been logged")


@dataclass
class Refused:
    """Input a form must ask again for: the HTTP status, and the messages by field ("form": the whole form)."""

    status: int
    errors: dict[str, str] = field(default_factory=dict)


def clean_text(text: str) -> str:
    """A form field as the browser counted it (maxlength): CR LF as one line break, control characters dropped."""
    return CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def same_site_only(request: Request) -> None:
    """Refuse (403) a form posted by another site's page: it would file reports from its visitors' addresses.

    Sec-Fetch-Site where the browser sends it; else (iOS before 16.4) Origin, when its host is none of the
    host asked, a proxy's X-Forwarded-Host and the public URL's. Neither header, or Origin "null": let through.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site == "cross-site":
            raise Problem(403, CROSS_SITE)
        return
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return
    h = request.headers
    ours = {_host("//" + h.get("host", "")), _host("//" + h.get("x-forwarded-host", "").split(",")[0].strip()),
            _host(services_of(request).settings.public_url)}
    if _host(origin) not in ours - {""}:
        raise Problem(403, CROSS_SITE)


def _host(url: str) -> str:
    """The host name of a URL ('' without one, or when it cannot be read)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def local_time(iso: str | None) -> str:
    """An ISO time as Dongguan wall time, e.g. 2026-12-03 16:05."""
    if not iso:
        return ""
    t = datetime.fromisoformat(iso)
    return t.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M") if t.tzinfo else t.strftime("%Y-%m-%d %H:%M")


env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                  trim_blocks=True, lstrip_blocks=True, auto_reload=False)
env.filters["local_time"] = local_time


def base_url(request: Request) -> str:
    """The path prefix this app is served under ('' at the root)."""
    return request.scope.get("root_path", "").rstrip("/")


def page(request: Request, template: str, status: int = 200, headers: dict | None = None, **context) -> HTMLResponse:
    """A rendered page, never cached."""
    base = base_url(request)
    html = env.get_template(template).render(base=base, static=base + "/static", **context)
    return HTMLResponse(html, status_code=status, headers={**NO_STORE, **(headers or {})})


def is_citizen_path(path: str) -> bool:
    """The paths whose errors a person reads in a browser: /r/..., /report, /t/... (not /v1/track), and /chief."""
    return path in ("/report", "/chief") or path.startswith(("/r/", "/t/", "/chief/"))


def error_page(request: Request, answer: Answer) -> HTMLResponse | None:
    """The HTML error page for a citizen's path (None elsewhere: problem+json there)."""
    if not is_citizen_path(request.url.path):
        return None
    zh, en = ERROR_WORDS.get(answer.status, SERVER_ERROR if answer.status >= 500 else (TITLES.get(answer.status, "出错了"), "Error"))
    retry = (answer.headers or {}).get("Retry-After")
    # Built outside the middleware for 500s: the security headers here too, with the pages' own policy.
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": html_csp(), **(answer.headers or {})}
    try:
        return page(request, "error.html", answer.status, headers, title_zh=zh, title_en=en, http_status=answer.status,
                    detail=answer.detail, retry_after=retry)
    except Exception:  # a broken template must not hide the error: problem+json instead
        log.exception("the error page for %s could not be drawn", request.url.path)
        return None
