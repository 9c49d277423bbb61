"""zonechief HTTP API (FastAPI): a thin layer over gis."""
