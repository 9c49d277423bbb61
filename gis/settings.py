"""Settings from environment variables with the ZONECHIEF_ prefix (pydantic-settings)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_DATA = Path(__file__).resolve().parent.parent / "data" / "boundaries"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZONECHIEF_", env_file=".env", extra="ignore")

    data_dir: Path = Field(REPO_DATA, description="Folder with villages.geojson, roster.csv, facilities.geojson")
    boundaries: Path | None = Field(None, description="Boundary file to use instead of data_dir/villages.geojson")
    snap_tolerance_m: float = Field(100.0, ge=0, description="Points outside every zone but this close are attached to the nearest one")
    overlap_tolerance_m2: float = Field(1.0, ge=0, description="Overlaps or gaps between zones larger than this are reported")
    max_batch: int = Field(10_000, ge=1, description="Largest batch accepted by POST /v1/lookup")
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = Field(None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; unset means the embedded SQLite file")
    sqlite_path: Path = Field(Path("var/zonechief.sqlite"), description="Embedded SQLite file used when database_url is unset")
    require_public_key: bool = Field(False, description="If false, requests without an API key act with the public role")
    address_min_confidence: float = Field(0.75, ge=0, le=1, description="Below this an address is stored as needs review")
    amap_key: str | None = Field(None, description="Amap web-service key; enables online geocoding fallback")
    amap_base_url: str = "https://restapi.amap.com"
    tianditu_key: str | None = Field(None, description="Tianditu (天地图) browser key for the tianditu base map of /maps pages")
    # Abuse limits (api/middleware.py).
    rate_limit_per_minute: int = Field(60, ge=0, description="Report submissions per minute per client IP for anonymous/public callers (also the burst); 0 turns the limit off")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body in general (413 beyond)")
    max_upload_bytes: int = Field(50 * 1_048_576, ge=1024, description="Largest body for admin reference-data uploads")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Origins allowed by CORS, comma-separated or a JSON list; none by default")
    tile_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Map tile origins the HTML pages may load from (Content-Security-Policy), e.g. https://webrd01.is.autonavi.com")

    @field_validator("cors_origins", "tile_hosts", mode="before")
    @classmethod
    def _list(cls, v):
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                import json

                return json.loads(v)
            return [p.strip() for p in v.split(",") if p.strip()]
        return v


@lru_cache
def get_settings() -> Settings:
    return Settings()
