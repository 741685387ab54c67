"""Data layer: where things are stored and how they are reached (DuckDB, pins boards, landing zone)."""
