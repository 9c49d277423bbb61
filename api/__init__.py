"""zonechief HTTP API (FastAPI): a thin layer over zonechief, maps and gis."""
