"""Presentation layer for the job: thin Dagster definitions that call processing/ and storage/."""
