"""Settings from environment variables with the ZONECHIEF_ prefix (pydantic-settings), split by concern.

Each concern is its own settings class, so a layer is handed only what it needs;
`Settings` is all of them at once. Read only in zonechief.services (`get_settings`).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gis.shipped import DATA_DIR, OVERLAP_TOLERANCE_M2, SNAP_TOLERANCE_M

_CONFIG = SettingsConfigDict(env_prefix="ZONECHIEF_", env_file=".env", extra="ignore")


class GeoSettings(BaseSettings):
    """Geography: where the boundaries, roster and facilities come from, and lookup tolerances."""

    model_config = _CONFIG
    data_dir: Path = Field(DATA_DIR, description="Folder with villages.geojson, roster.csv, facilities.geojson")
    boundaries: Path | None = Field(None, description="Boundary file to use instead of data_dir/villages.geojson")
    snap_tolerance_m: float = Field(SNAP_TOLERANCE_M, ge=0, description="Points outside every zone but this close are attached to the nearest one")
    overlap_tolerance_m2: float = Field(OVERLAP_TOLERANCE_M2, ge=0, description="Overlaps or gaps between zones larger than this are reported")


class StoreSettings(BaseSettings):
    """The report store: PostGIS by URL, or the embedded SQLite file."""

    model_config = _CONFIG
    database_url: str | None = Field(None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; unset means the embedded SQLite file")
    sqlite_path: Path = Field(Path("var/zonechief.sqlite"), description="Embedded SQLite file used when database_url is unset")
    # Every database use ends within these (store.deadline); a request gets 503 instead of waiting longer.
    db_connect_timeout_s: int = Field(2, ge=2, description="Seconds to connect to PostgreSQL (libpq's connect_timeout, at least 2)")
    db_statement_timeout_s: float = Field(4.0, gt=0, description="Longest a request's statement may run (PostgreSQL's statement_timeout and lock_timeout; the client gives up 0.5 s later if the server does not answer); SQLite's busy timeout")
    db_bulk_statement_timeout_s: float = Field(600.0, gt=0, description="The same for each statement of a bulk import, a migration or an index rebuild")
    db_pool_timeout_s: float = Field(2.0, gt=0, description="Longest wait for a free pooled connection")

    def store_url(self) -> str:
        """database_url, or the embedded SQLite file (its folder created)."""
        if self.database_url:
            return self.database_url
        path = Path(self.sqlite_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"


def _list(v):
    """A comma-separated or JSON list from the environment."""
    if isinstance(v, str):
        v = v.strip()
        if v.startswith("["):
            return json.loads(v)
        return [p.strip() for p in v.split(",") if p.strip()]
    return v


class ApiSettings(BaseSettings):
    """The HTTP API: binding, keys, batch size and abuse limits (api/middleware.py)."""

    model_config = _CONFIG
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(1, ge=1, description="Worker processes of `zonechief serve`; more than one needs PostGIS (database_url)")
    max_batch: int = Field(10_000, ge=1, description="Largest batch accepted by POST /v1/lookup")
    require_public_key: bool = Field(False, description="If false, requests without an API key act with the public role")
    rate_limit_per_minute: int = Field(60, ge=0, description="Report submissions per minute per client IP for anonymous/public callers (also the burst); 0 turns the limit off")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body in general (413 beyond)")
    max_upload_bytes: int = Field(50 * 1_048_576, ge=1024, description="Largest body for admin reference-data uploads")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Origins allowed by CORS, comma-separated or a JSON list; none by default")

    _cors = field_validator("cors_origins", mode="before")(classmethod(lambda cls, v: _list(v)))


class MapsSettings(BaseSettings):
    """The planners' map pages: base-map keys and the tile hosts the pages may load."""

    model_config = _CONFIG
    tianditu_key: str | None = Field(None, description="Tianditu (天地图) browser key for the tianditu base map of /maps pages")
    tile_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Map tile origins the HTML pages may load from (Content-Security-Policy), e.g. https://webrd01.is.autonavi.com")

    _tiles = field_validator("tile_hosts", mode="before")(classmethod(lambda cls, v: _list(v)))


class GeocoderSettings(BaseSettings):
    """Address geocoding: the offline gazetteer's threshold and the optional Amap fallback."""

    model_config = _CONFIG
    address_min_confidence: float = Field(0.75, ge=0, le=1, description="Below this an address is stored as needs review")
    amap_key: str | None = Field(None, description="Amap web-service key; enables online geocoding fallback")
    amap_base_url: str = "https://restapi.amap.com"


class CitizenSettings(BaseSettings):
    """The citizen's side: the public address printed in QR codes, and report photos (zonechief.photos)."""

    model_config = _CONFIG
    public_url: str = Field("http://127.0.0.1:8000", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
                            description="Public base URL of this server as phones reach it; QR codes encode {public_url}/r/{service_code}")
    media_dir: Path = Field(Path("var/media"), description="Folder of the media store (report photos, by content hash)")
    max_photo_bytes: int = Field(10 * 1_048_576, ge=1024, description="Largest photo accepted, as uploaded (413 beyond)")
    max_photos: int = Field(3, ge=0, le=10, description="Photos per citizen report")

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        return v.rstrip("/")


class Settings(GeoSettings, StoreSettings, ApiSettings, MapsSettings, GeocoderSettings, CitizenSettings):
    """Every setting; each concern's class is a view of the same environment."""

    model_config = _CONFIG


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment and .env, built once per process; only zonechief.services calls it."""
    return Settings()
