"""/v1/admin/webhooks: subscribers to report events (zonechief.webhooks), and their deliveries. Admin keys only."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth import Caller
from api.deps import ServicesDep, require
from api.errors import Problem
from zonechief.webhooks import WebhookIn, check_not_self, new_secret

router = APIRouter(prefix="/v1/admin/webhooks", tags=["webhooks"])
Admin = Annotated[Caller, Depends(require("admin"))]


def _out(w, secret: str | None = None) -> dict:
    d = {"id": w.id, "url": w.url, "kind": w.kind, "filter": w.filter, "created_at": w.created_at.isoformat(),
         "created_by": w.created_by}
    if secret is not None:
        d["secret"] = secret  # shown once, when made
    return d


@router.post("", status_code=201, summary="Subscribe a receiver to report events",
             description="Events: report.created, report.assigned, report.status_changed, report.rated. Each is POSTed "
                         "as JSON with X-Zonechief-Event-Id, X-Zonechief-Event and X-Zonechief-Signature (sha256=HMAC "
                         "of the body with the secret; `kind: wecom` posts a WeCom group-robot markdown message "
                         "instead). Non-2xx or no answer within 5 s: retried with backoff for 24 h, then dead-lettered. "
                         "The secret is returned once.")
def create_webhook(body: WebhookIn, request: Request, services: ServicesDep, caller: Admin, response: Response):
    """Register a subscriber."""
    s = services.settings
    own = [s.public_url, f"http://{s.host}:{s.port}", f"{request.url.scheme}://{request.url.netloc}"]
    check_not_self(body.url, own)
    secret = body.secret or new_secret()
    w = services.db.outbox.add_webhook(body.url, body.kind, secret, body.filter.model_dump(), caller.actor,
                                       datetime.now(timezone.utc))
    response.headers["Location"] = f"/v1/admin/webhooks/{w.id}"
    return _out(w, secret)


@router.get("", summary="Subscribers")
def list_webhooks(services: ServicesDep, caller: Admin):
    """Every subscriber with its deliveries by status (secrets are not shown)."""
    repo = services.db.outbox
    return [{**_out(w), "deliveries": repo.counts(w.id)} for w in repo.list_webhooks()]


@router.delete("/{webhook_id}", status_code=204, summary="Unsubscribe")
def delete_webhook(webhook_id: int, services: ServicesDep, caller: Admin):
    """Remove a subscriber and its pending and past deliveries."""
    if not services.db.outbox.delete_webhook(webhook_id):
        raise Problem(404, f"no webhook {webhook_id}")
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", summary="A subscriber's deliveries (dead letters included)")
def deliveries(webhook_id: int, services: ServicesDep, caller: Admin, *,
               status: Annotated[Literal["pending", "delivered", "dead"] | None, Query()] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0):
    """Deliveries, newest event first: status, attempts, the receiver's last answer."""
    repo = services.db.outbox
    if repo.webhook(webhook_id) is None:
        raise Problem(404, f"no webhook {webhook_id}")
    items = repo.deliveries(webhook_id, status, limit, offset)
    for d in items:
        for k in ("next_at", "created_at", "delivered_at"):
            d[k] = d[k].isoformat() if d[k] else None
    return {"webhook_id": webhook_id, "counts": repo.counts(webhook_id), "limit": limit, "offset": offset,
            "items": items}
