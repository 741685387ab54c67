"""Processing layer: pure functions over DuckDB connections, frames and paths. No Dagster here."""
