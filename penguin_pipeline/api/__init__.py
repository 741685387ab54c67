"""The prediction API (presentation layer): `python -m penguin_pipeline.api` or `make serve`."""
