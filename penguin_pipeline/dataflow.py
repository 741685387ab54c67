"""README's data-flow chart, generated from the asset graph and the source registry (`make chart`).

The chapter asks for a data-flow chart that stays true; generating it from the definitions means
a new asset, dependency or cadence shows up in the chart, and a test fails while README is behind.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from . import sources
from .definitions import defs
from .storage import boards

START, END = "<!-- dataflow:start -->", "<!-- dataflow:end -->"


def _node_id(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _freshness(node) -> str:
    policy = node.freshness_policy
    if policy is None:
        return ""
    return f"<br/>fresh by cron {policy.deadline_cron} UTC"


def mermaid_chart() -> str:
    graph = defs().resolve_asset_graph()
    lines = ["```mermaid", "flowchart LR"]
    lines.append('  subgraph data["data layer: outside the code bundle"]')
    for source in sources.SOURCES:
        formats = "/".join(source.formats)
        lines.append(
            f'    {_node_id(source.name)}[("{source.name}<br/>'
            f"landing {source.prefix or 'root'}/ ({formats})<br/>"
            f'expected: cron {source.cadence_cron} UTC<br/>owner {source.owner}")]'
        )
    lines.append("  end")
    lines.append('  subgraph job["presentation: the Dagster job (logic in processing/)"]')
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        node = graph.get(key)
        stored = node.metadata.get("stored_in", "")
        stored = getattr(stored, "value", stored)
        lines.append(
            f'    {_node_id(key.to_user_string())}["{key.to_user_string()}<br/>'
            f'<i>{stored}</i>{_freshness(node)}"]'
        )
    lines.append("  end")
    lines.append('  subgraph serving["presentation: served"]')
    reads = f"reads pins {boards.MODEL_PIN}, {boards.SUMMARY_PIN}"
    lines.append(f'    api["prediction API<br/>vetiver + FastAPI<br/>{reads}"]')
    lines.append('    report_file["penguin_report.html<br/>for people"]')
    lines.append(
        '    explorer["model explorer<br/>Shiny app, make app<br/>asks the API, its own key"]'
    )
    lines.append("  end")
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            lines.append(
                f"  {_node_id(parent.to_user_string())} --> {_node_id(key.to_user_string())}"
            )
    lines.append("  penguin_model -. new version .-> api")
    lines.append("  penguin_summary -. species x sex pin .-> api")
    lines.append("  penguin_report --> report_file")
    lines.append("  api -- predictions, inputs, penguin_summary --> explorer")
    lines.append("```")
    return "\n".join(lines)


def replace_chart(readme: str, chart: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"README has no {START} ... {END} block for the data-flow chart")
    return pattern.sub(lambda _: f"{START}\n{chart}\n{END}", readme)


def main() -> None:
    parser = argparse.ArgumentParser(description="write the data-flow chart into README.md")
    parser.add_argument("readme", nargs="?", default="README.md")
    path = Path(parser.parse_args().readme)
    path.write_text(
        replace_chart(path.read_text(encoding="utf-8"), mermaid_chart()), encoding="utf-8"
    )
    print(f"data-flow chart written to {path}")


if __name__ == "__main__":
    main()
