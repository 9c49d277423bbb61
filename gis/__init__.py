"""Geography for zonechief: boundaries, coordinate systems, point → zone → chief lookup, geocoding and analysis; no database, web or settings."""
