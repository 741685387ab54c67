"""Data layer: where things are stored and how they are reached (DuckDB, pins boards, landing zone,
reports), through one fsspec code path for folders and S3 (locations.py)."""
