"""Settings from environment variables with the ZONECHIEF_ prefix (pydantic-settings)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
