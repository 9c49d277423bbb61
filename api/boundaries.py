"""/v1/boundaries: the boundary generations (every import kept, with its validity start) and what moved
between two of them, as JSON and as a map (/maps/boundaries/diff)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from api.deps import ServicesDep
from api.errors import Problem
from gis.boundary_diff import BoundaryDiff, diff_units
from zonechief.services import Services

router = APIRouter(tags=["geography"])


class GenerationOut(BaseModel):
    """One boundary generation."""

    id: int
    valid_from: str
    created_at: str
    activated_at: str | None
    in_force: bool
    actor: str
    source: str
    sha256: str | None
    rewrite_history: bool
    summary: dict


@router.get("/v1/boundaries/generations", response_model=list[GenerationOut],
            summary="Boundary generations: every import, its source, who, when and from when it is valid")
def list_generations(services: ServicesDep):
    """Oldest first. The generation in force at an instant is the one with the latest `valid_from` at or before it;
    `in_force`: the one lookups without `at` use now; `activated_at`: when it was put in force (null: scheduled)."""
    from store.generations import GenerationRepository

    db = services.db
    with db.sessions() as s:
        rows = GenerationRepository.for_db(db).all(s)
    current = services.index.generation
    return [{"id": g.id, "valid_from": g.valid_from.isoformat(), "created_at": g.created_at.isoformat(),
             "activated_at": g.activated_at.isoformat() if g.activated_at else None, "in_force": g.id == current,
             "actor": g.actor, "source": g.source, "sha256": g.sha256, "rewrite_history": g.rewrite_history,
             "summary": g.summary or {}} for g in rows]


From = Annotated[int | None, Query(alias="from", ge=1, description="Generation id (default: the one before `to`; "
                                                                  "`to` itself when it is the first)")]
To = Annotated[int | None, Query(ge=1, description="Generation id (default: the one in force)")]


def diff_of(services: Services, from_: int | None, to: int | None) -> tuple[BoundaryDiff, int, int]:
    """The diff between two generations (defaults as the parameters say); 404 for an unknown one."""
    cat = services.generations
    to_id = to if to is not None else services.index.generation
    if to_id is None or cat.get(to_id) is None:
        raise Problem(404, f"no boundary generation {to_id}; GET /v1/boundaries/generations lists them")
    if from_ is None:
        prev = cat.previous(to_id)
        from_ = prev.id if prev is not None else to_id  # the first generation: nothing moved
    if cat.get(from_) is None:
        raise Problem(404, f"no boundary generation {from_}; GET /v1/boundaries/generations lists them")
    old, new = services.generation_index(from_), services.generation_index(to_id)
    return diff_units(old, new, tolerance_m2=new.overlap_tolerance_m2), from_, to_id


@router.get("/v1/boundaries/diff", summary="What moved between two boundary generations, per village and zone")
def boundaries_diff(services: ServicesDep, from_: From = None, to: To = None):
    """Per village and zone: area gained and lost (m², in EPSG:4547), renamed, merged, split, new, gone."""
    diff, a, b = diff_of(services, from_, to)
    return {"from": a, "to": b, **diff.to_json()}


@router.get("/maps/boundaries/diff", response_class=HTMLResponse, tags=["maps"],
            summary="Map of what moved between two boundary generations (HTML)")
def boundaries_diff_page(request: Request, services: ServicesDep, from_: From = None, to: To = None,
                         basemap: Annotated[str, Query(pattern="^(none|osm|tianditu|amap)$")] = "none"):
    """Gained and lost areas in two colours, new and gone villages outlined, popups with areas."""
    from api.maps import _page, _static_url
    from maps.boundary_diff import boundary_diff_map

    diff, a, b = diff_of(services, from_, to)
    key = services.settings.tianditu_key
    return _page(lambda: boundary_diff_map(diff, basemap=basemap, tianditu_key=key, static_url=_static_url(request),
                                           title=f"边界变化 What moved: generation {a} → {b}"), basemap, key)
