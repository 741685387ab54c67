"""Presentation layer for the report: a Jinja2 template and its renderer."""
