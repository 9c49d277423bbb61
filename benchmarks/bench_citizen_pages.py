"""The citizen's pages on a phone over a weak connection, beside the planners' /maps/zones.

    .venv/bin/python benchmarks/bench_citizen_pages.py [--reps 5] [--profiles none,3g,2g] [--code DGCS-441900112-WC003]
                                                       [--reports 500] [--upload-profile 3g | --no-upload]

Starts `zonechief serve --demo` (this venv's, on a free port, store and media in a temp dir, no rate
limit), files one report through /v1/reports for a tracking link, and drives Debian's Chromium with
Playwright as a phone in WeChat's browser (390×844, touch, a MicroMessenger user agent). Pages:
/r/{code} (a toilet's QR page), /report (with the offline map of the zones), /t/{token} (the
tracking page) and, for comparison, /maps/zones. Each page is visited once unthrottled first (so the
server's first-request costs are not counted), then, for each network profile set with CDP
Network.emulateNetworkConditions on the page's own session, --reps times in a fresh browser context
(cold cache) followed by one reload in the same context (warm cache). Pages rotate within a
repetition so load from elsewhere on the machine hits them alike.

Measured per visit: bytes received (the sum of CDP Network.loadingFinished encodedDataLength:
headers and bodies as they crossed the wire, no compression is served), requests (all of them,
and those that went to the network rather than the cache), DOMContentLoaded and load (Navigation
Timing, from navigation start), and "usable": the first animation frame at which the page's
working part is shown (/r and /t: the category select or the status line; /report and
/maps/zones: a zone outline, `.leaflet-interactive`), recorded in the page by a MutationObserver.

Then the upload: the /r/{code} form filed with one 4032×3024 JPEG (~3.5 MB of noise, made with
Pillow) under "regular 3G" (--upload-profile): bytes sent (request headers and body) and the seconds from the tap
on Send to the receipt page's load.

Printed: one table of medians (cold, then warm) per profile and page, with each page's ratio to
/maps/zones for cold bytes and cold load time; one line per profile; the upload line; and the
errors (requests off the server's origin, failed loads, HTTP errors, script errors), which
must be none (the exit status is 1 otherwise). Chromium resolves no host but 127.0.0.1, so a
request elsewhere fails instead of leaving the machine. Nothing else is asserted: numbers are for
reading. The phone's CPU is not emulated (this machine's is faster).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]  # nothing leaves the machine
WECHAT_UA = ("Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 MMWEBID/2247 "
             "MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 Weixin NetType/4G Language/zh_CN ABI/arm64")
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
         "user_agent": WECHAT_UA, "locale": "zh-CN"}
KBIT = 1000 / 8  # bytes per second in one kbit/s
PROFILES = {  # name: (label, latency ms, down bytes/s, up bytes/s); -1: no limit
    "none": ("none (loopback)", 0, -1, -1),
    "3g": ("regular 3G", 300, 750 * KBIT, 250 * KBIT),
    "2g": ("slow 2G-ish", 800, 250 * KBIT, 50 * KBIT),
}
# The page's working part, by path prefix: what the citizen (or planner) waits for.
USABLE = {"/r/": "select[name=category]", "/report": ".leaflet-interactive", "/t/": "#status",
          "/maps/zones": ".leaflet-interactive"}
USABLE_SCRIPT = """(() => {
  const SEL = %s;
  window.__zc = {usable: null};
  const hit = Object.keys(SEL).find(p => location.pathname.startsWith(p));
  if (!hit) return;
  let waiting = false;
  const check = () => {  // the first frame painted with the element laid out
    if (window.__zc.usable !== null || waiting) return;
    const el = document.querySelector(SEL[hit]);
    if (!el) return;
    waiting = true;
    requestAnimationFrame(() => {
      waiting = false;
      if (el.isConnected && el.getClientRects().length) { window.__zc.usable = performance.now(); obs.disconnect(); }
      else check();
    });
  };
  const obs = new MutationObserver(check);
  obs.observe(document, {childList: true, subtree: true});
})();""" % json.dumps(USABLE)
TIMINGS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return n && n.loadEventEnd > 0 && window.__zc && window.__zc.usable !== null
    ? {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd, usable: window.__zc.usable} : null;
}"""
TIMEOUT_MS = 300_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`zonechief serve --demo` from this venv on a free port, its store and media in `work`."""

    def __init__(self, work: Path, reports: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZONECHIEF_")}
        env.update(ZONECHIEF_SQLITE_PATH=str(work / "store.sqlite"), ZONECHIEF_MEDIA_DIR=str(work / "media"),
                   ZONECHIEF_RATE_LIMIT_PER_MINUTE="0")
        self.log = open(work / "serve.log", "ab")
        exe = Path(sys.executable).parent / "zonechief"
        # Its own session: Ctrl-C reaches this script only, which stops the server in order.
        self.proc = subprocess.Popen([str(exe), "serve", "--demo", "--demo-reports", str(reports), "--port",
                                      str(self.port)], cwd=work, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self._wait(work)
        except BaseException:
            self.stop()
            raise

    def _wait(self, work: Path):
        deadline = time.monotonic() + 300
        while True:  # up, and done warming (its background warm-up would compete for the CPU)
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=5) as r:
                    if "warming" not in r.read().decode():
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                tail = (work / "serve.log").read_text(errors="replace").splitlines()[-15:]  # the folder goes on exit
                raise RuntimeError("zonechief serve did not come up; its last words:\n" + "\n".join(tail))
            time.sleep(0.2)

    def tracking_path(self, code: str) -> str:
        """File one report at the facility; the path of its tracking page."""
        body = json.dumps({"source": "service_code", "category": "03001", "description": "bench",
                           "location": {"service_code": code}}).encode()
        req = urllib.request.Request(self.url + "/v1/reports", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            link = json.loads(r.read())["tracking_url"]
        assert link.startswith(self.url + "/t/"), link
        return urlsplit(link).path

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class Visit:
    """What one page load cost: bytes, requests, timings (ms from navigation start)."""

    bytes: int = 0
    requests: int = 0
    network: int = 0
    dcl: float = 0.0
    load: float = 0.0
    usable: float = 0.0


@dataclass
class Trouble:
    """What went wrong on the pages; the browser's own /favicon.ico requests only as notes (no page asks for one)."""

    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, url: str):
        (self.notes if urlsplit(url).path == "/favicon.ico" else self.errors).append(what)


@dataclass
class Recorder:
    """The page's network as its CDP session sees it, and everything that went wrong."""

    origin: str
    log: Trouble
    urls: dict = field(default_factory=dict)  # requestId → url
    cached: set = field(default_factory=set)
    open: set = field(default_factory=set)
    bytes: int = 0
    requests: int = 0

    def attach(self, cdp):
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.requestServedFromCache", lambda e: self.cached.add(e["requestId"]))
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._failed)

    def reset(self):
        self.urls, self.cached, self.open, self.bytes, self.requests = {}, set(), set(), 0, 0

    def _sent(self, e):
        url, rid = e["request"]["url"], e["requestId"]
        if rid in self.urls:  # a redirect: the same request goes on
            return
        self.urls[rid] = url
        self.requests += 1
        self.open.add(rid)
        u = urlsplit(url)
        if u.scheme not in ("data", "blob") and f"{u.scheme}://{u.netloc}" != self.origin:
            self.log.errors.append(f"off origin: {url}")

    def _response(self, e):
        r = e["response"]
        if r.get("fromDiskCache") or r.get("fromPrefetchCache"):
            self.cached.add(e["requestId"])
        if r["status"] >= 400:
            self.log.add(f"HTTP {r['status']}: {r['url']}", r["url"])

    def _finished(self, e):
        self.bytes += int(e.get("encodedDataLength") or 0)
        self.open.discard(e["requestId"])

    def _failed(self, e):
        self.open.discard(e["requestId"])
        if not e.get("canceled"):
            self.log.errors.append(f"failed ({e.get('errorText')}): {self.urls.get(e['requestId'])}")


def throttle(cdp, profile: str):
    _, latency, down, up = PROFILES[profile]
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": latency,
                                                  "downloadThroughput": down, "uploadThroughput": up})


def settle(page, rec: Recorder) -> dict:
    """Wait for the page's timings and for its requests to end; the timings."""
    got = page.wait_for_function(TIMINGS, polling=50, timeout=TIMEOUT_MS).json_value()
    deadline = time.monotonic() + 60
    while rec.open and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # lets the CDP events in
    return got


def measure(page, rec: Recorder, nav) -> Visit:
    rec.reset()
    nav()
    t = settle(page, rec)
    network = len([r for r in rec.urls if r not in rec.cached and not rec.urls[r].startswith(("data:", "blob:"))])
    return Visit(rec.bytes, rec.requests, network, t["dcl"], t["load"], t["usable"])


def new_phone(browser, origin: str, profile: str, log: Trouble):
    """A fresh context like a phone in WeChat (cold cache), its page, CDP session and recorder."""
    ctx = browser.new_context(**PHONE)
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.add_init_script(USABLE_SCRIPT)
    page = ctx.new_page()
    page.on("pageerror", lambda e: log.errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: m.type == "error" and log.add(f"console: {m.text}", m.location.get("url", "")))
    cdp = ctx.new_cdp_session(page)
    rec = Recorder(origin, log)
    rec.attach(cdp)
    cdp.send("Network.enable")
    throttle(cdp, profile)
    return ctx, page, rec


def visit(browser, origin: str, url: str, profile: str, log: Trouble) -> tuple[Visit, Visit]:
    """(cold, warm): a fresh context's first load, then a reload in it."""
    ctx, page, rec = new_phone(browser, origin, profile, log)
    try:
        cold = measure(page, rec, lambda: page.goto(url, wait_until="load"))
        warm = measure(page, rec, lambda: page.reload(wait_until="load"))
    finally:
        ctx.close()
    return cold, warm


def make_photo(path: Path) -> int:
    """A 4032×3024 JPEG of coloured blotches and fine noise (~3.5 MB: a phone photo's size, not compressible)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(15)
    blotches = Image.fromarray(rng.integers(0, 256, (3024 // 16, 4032 // 16, 3), dtype=np.uint8))
    base = np.asarray(blotches.resize((4032, 3024), Image.BICUBIC)).astype(np.int16)
    grain = np.asarray(Image.effect_noise((4032, 3024), 6)).astype(np.int16)[..., None] - 128
    buf = io.BytesIO()
    Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def upload(browser, origin: str, url: str, photo: Path, profile: str, log: Trouble) -> tuple[int, int, int, float]:
    """(bytes sent, of which the form's body, bytes received, seconds from the tap on Send to the receipt page's load),
    the whole way throttled."""
    ctx, page, rec = new_phone(browser, origin, profile, log)
    try:
        page.goto(url, wait_until="load")
        settle(page, rec)
        page.select_option("#category", "03001")
        page.fill("#description", "水龙头坏了 / the tap is broken (bench)")
        page.set_input_files("#photo", str(photo))
        page.wait_for_selector("#previews img")
        posts = []
        page.on("request", lambda r: r.method == "POST" and posts.append(r))
        rec.reset()
        t0 = time.perf_counter()
        page.click("#send")
        page.wait_for_url(re.compile(r"/t/[0-9a-f]+\?filed=1$"), wait_until="load", timeout=TIMEOUT_MS)
        dt = time.perf_counter() - t0
        settle(page, rec)
        assert len(posts) == 1, [p.url for p in posts]
        body = int(posts[0].all_headers()["content-length"])  # the multipart body as sent (sizes() says 0 here)
        return posts[0].sizes()["requestHeadersSize"] + body, body, rec.bytes, dt
    finally:
        ctx.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="fresh contexts per page and profile")
    ap.add_argument("--profiles", default="none,3g,2g", help=f"comma-separated, of {', '.join(PROFILES)}")
    ap.add_argument("--code", default="DGCS-441900112-WC003", help="the facility's city service code (/r/{code})")
    ap.add_argument("--reports", type=int, default=500, help="demo reports in the store")
    ap.add_argument("--upload-profile", default="3g", help="the network profile of the photo upload")
    ap.add_argument("--no-upload", action="store_true", help="skip the photo upload")
    a = ap.parse_args()
    profiles = [p.strip() for p in a.profiles.split(",") if p.strip()]
    unknown = [p for p in [*profiles, a.upload_profile] if p not in PROFILES]
    if unknown:
        ap.error(f"unknown profiles {unknown}; choose from {', '.join(PROFILES)}")
    stopped: list[int] = []

    def stop(signum, _frame):
        stopped.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)  # the finally blocks clean up on a kill too
    work = Path(tempfile.mkdtemp(prefix="zc-citizen-bench-"))
    try:
        run(a, profiles, work)
    except BaseException:
        if not stopped:
            raise
        # Ctrl-C reaches Playwright's driver too, so what surfaces may be its "target closed" instead.
        print(f"\nstopped by signal {stopped[0]}; server stopped, {work} removed", file=sys.stderr)
        sys.exit(128 + stopped[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(a, profiles: list[str], work: Path):
    from playwright.sync_api import sync_playwright

    t_start = time.perf_counter()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {a.reps} cold + warm visits per page and "
          f"profile; {a.reports} demo reports", flush=True)
    server = Server(work, a.reports)
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        log = Trouble()
        pages = {"/r/{code}": f"/r/{a.code}", "/report": "/report", "/t/{token}": server.tracking_path(a.code),
                 "/maps/zones": "/maps/zones"}
        print(f"server up on {server.url} in {time.perf_counter() - t_start:.0f} s; pages: "
              + ", ".join(pages.values()), flush=True)
        for path in pages.values():  # the server's first request of each page is not what is measured
            visit(browser, server.url, server.url + path, "none", log)
        res: dict = {(p, n): ([], []) for p in profiles for n in pages}
        for p in profiles:
            for rep in range(a.reps):
                names = list(pages)
                names = names[rep % len(names):] + names[:rep % len(names)]
                for n in names:
                    cold, warm = visit(browser, server.url, server.url + pages[n], p, log)
                    res[(p, n)][0].append(cold)
                    res[(p, n)][1].append(warm)
                print(f"  {PROFILES[p][0]} rep {rep + 1}/{a.reps}: " + "  ".join(
                    f"{n} {res[(p, n)][0][-1].usable / 1e3:.1f}/{res[(p, n)][1][-1].usable / 1e3:.1f} s"
                    for n in pages), flush=True)
        up = None
        if not a.no_upload:
            photo = work / "IMG_20261203_101500.jpg"
            size = make_photo(photo)
            print(f"  upload: {size / 1e6:.2f} MB JPEG, 4032×3024, under {PROFILES[a.upload_profile][0]}…", flush=True)
            up = (a.upload_profile, size,
                  *upload(browser, server.url, server.url + pages["/r/{code}"], photo, a.upload_profile, log))
        browser.close()
    finally:
        try:
            pw.stop()
        finally:
            server.stop()
    report(res, profiles, list(pages), up, log, a.reps)
    print(f"load average now {os.getloadavg()[0]:.1f}; took {time.perf_counter() - t_start:.0f} s")
    if log.errors:
        sys.exit(1)


def report(res: dict, profiles: list[str], names: list[str], up, log: Trouble, reps: int):
    med = lambda visits, k: statistics.median(getattr(v, k) for v in visits)  # noqa: E731
    print(f"\nMedians of {reps} visits. cold: a fresh context; warm: a reload in it. KB: bytes received (headers "
          "included); req: to the network/all; times in ms from navigation start; ×zones: cold bytes and load "
          "over /maps/zones'")
    print(f"{'profile':<17}{'page':<12}{'KB':>7}{'req':>6}{'DCL':>7}{'load':>7}{'usable':>7}   "
          f"{'warm KB':>7}{'req':>6}{'load':>7}{'usable':>7}   {'×zones KB':>9}{'load':>6}")
    reqs = lambda visits: f"{med(visits, 'network'):.0f}/{med(visits, 'requests'):.0f}"  # noqa: E731
    for p in profiles:
        zc = res[(p, "/maps/zones")][0]
        for n in names:
            cold, warm = res[(p, n)]
            print(f"{PROFILES[p][0]:<17}{n:<12}{med(cold, 'bytes') / 1e3:>7.1f}{reqs(cold):>6}{med(cold, 'dcl'):>7.0f}"
                  f"{med(cold, 'load'):>7.0f}{med(cold, 'usable'):>7.0f}   {med(warm, 'bytes') / 1e3:>7.1f}"
                  f"{reqs(warm):>6}{med(warm, 'load'):>7.0f}{med(warm, 'usable'):>7.0f}   "
                  f"{med(cold, 'bytes') / med(zc, 'bytes'):>9.2f}{med(cold, 'load') / med(zc, 'load'):>6.2f}")
    print()
    for p in profiles:
        citizen = [n for n in names if n != "/maps/zones"]
        usable = [med(res[(p, n)][0], "usable") / 1e3 for n in citizen]
        warm = [med(res[(p, n)][1], "usable") / 1e3 for n in citizen]
        kb = [med(res[(p, n)][0], "bytes") / 1e3 for n in citizen]
        zc = res[(p, "/maps/zones")][0]
        print(f"{PROFILES[p][0]}: the citizen's pages are usable in {min(usable):.1f}–{max(usable):.1f} s cold "
              f"({min(kb):.0f}–{max(kb):.0f} KB), {min(warm):.1f}–{max(warm):.1f} s warm; /maps/zones "
              f"{med(zc, 'usable') / 1e3:.1f} s ({med(zc, 'bytes') / 1e3:.0f} KB)")
    if up is not None:
        profile, photo, sent, body, got, dt = up
        print(f"upload under {PROFILES[profile][0]}: the /r form with one {photo / 1e6:.2f} MB photo sent "
              f"{sent / 1e6:.2f} MB (body {body / 1e6:.2f} MB) and received {got / 1e3:.0f} KB (the receipt page "
              f"and its resources) in {dt:.1f} s from Send to the receipt page's load "
              f"({sent * 8 / dt / 1e3:.0f} kbit/s sent on average)")
    off = [e for e in log.errors if e.startswith("off origin")]
    print(f"errors: {len(log.errors)} ({len(off)} off the server's origin)" + "".join(f"\n  {e}" for e in log.errors[:20]))
    if log.notes:
        print(f"notes: {len(log.notes)} (the browser asked for /favicon.ico, which the server does not have: "
              f"{sorted(set(log.notes))})")


if __name__ == "__main__":
    main()
