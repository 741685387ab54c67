"""The model card as HTML: the fragment the report includes, and the page the API serves."""

from __future__ import annotations

from pathlib import Path

import jinja2

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model card: penguin_model {{ version }}</title>
<style>body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; }
table { border-collapse: collapse; }
td, th { border-bottom: 1px solid #ddd; padding: 0.2rem 0.6rem; }
.meta { color: #666; }</style></head>
<body><h1>Model card: penguin_model {{ version }}</h1>
{% include "model_card.html.j2" %}
</body></html>
"""


def card_page(card: dict) -> str:
    """One self-contained HTML page of the card."""
    page = TEMPLATES.from_string(PAGE)
    return page.render(card=card, version=card["model_details"]["version"])
