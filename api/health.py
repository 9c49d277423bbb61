"""/healthz: liveness and the status of each dependency."""
from __future__ import annotations

import logging
import os
import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

import zonechief
from api.deps import ServicesDep
from api.errors import RETRY_AFTER_S

router = APIRouter(tags=["ops"])
log = logging.getLogger("zonechief.api")
UP = ("ok", "warming", "cold")  # warming, cold: that part answers, only its first use is slower


class WarmUp:
    """Work a new process does once, in a background thread, so that readiness does not wait for it
    (loading the compiled hot-spot kernels); `check` is its entry in /healthz.

    It starts `delay_s` after the lifespan's startup, by when uvicorn listens: the warm-up (imports and
    numba's own start-up, about 1.5 s of CPU holding the GIL) would otherwise delay that.
    """

    def __init__(self, fn, delay_s: float = 0.5):
        self.check = {"status": "warming"}
        threading.Thread(target=self._run, args=(fn, delay_s), name="zonechief-warm-up", daemon=True).start()

    def _run(self, fn, delay_s):
        time.sleep(delay_s)
        try:
            fn()
            self.check = {"status": "ok"}
        except Exception as exc:  # the first use does the work instead
            log.warning("warm-up failed (%s); the first hot-spot map will do it", type(exc).__name__)
            self.check = {"status": "cold", "error": type(exc).__name__}


@router.get("/healthz", summary="Liveness and the status of each dependency",
            description="`checks` has one entry per dependency (zones_index, database) with its status, and "
                        "`hotspots`: `warming` while a new process loads its compiled hot-spot kernels in the "
                        "background, then `ok`. 503 with Retry-After when any is down. "
                        "`worker` is the answering process (its pid) and "
                        "the reference data it has in force: a short fingerprint, and the audit id of the import "
                        "it came from (null: the shipped files); every worker should show the same.",
            responses={503: {"description": "A dependency is down", "content": {"application/json": {}}}})
def healthz(request: Request, services: ServicesDep):
    """The status of the zone index and the database (and the warm-up, while it runs, since startup)."""
    checks = services.health()
    warm = getattr(request.app.state, "warm_up", None)  # started by the lifespan
    if warm is not None:
        checks["hotspots"] = warm.check
    ok = all(c["status"] in UP for c in checks.values())
    zi = checks["zones_index"]
    body = {"status": "ok" if ok else "unavailable", "version": zonechief.__version__, "zones": zi.get("zones"),
            "villages": zi.get("villages"), "roster": zi.get("roster"), "checks": checks, "worker": _worker(services)}
    if ok:
        return body
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def _worker(services) -> dict:
    """This process and the reference data in force in it."""
    try:
        fp = services.reference_fingerprint
    except Exception:  # a broken boundary file shows under checks.zones_index
        fp = None
    return {"pid": os.getpid(), "reference": {"fingerprint": fp, "audit_id": services.reference_version}}
