"""The documentation's generated pages, written before `zensical build` (`make docs`).

What the code, the Makefile, .env.example and the benchmarks' results files already say is drawn
from them at build time instead of being retyped, so the site cannot drift from them:
reference/environment (from .env.example), reference/make-targets (the Makefile's `## ` comments),
reference/cli (the CLI's own --help), reference/api (the app's OpenAPI document) and one table and
plot per results file under docs/benchmarks/results/. Pages include them with `--8<--` (pymdownx
snippets, which fails the build on a missing file). Then every nav entry of mkdocs.yml must exist:
zensical's strict mode catches broken links and anchors but not a nav entry without its page.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = DOCS / "benchmarks" / "results"
VARIABLE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$")


def cell(value) -> str:
    """A value as one Markdown table cell: pipes escaped, lists joined, floats kept short."""
    if isinstance(value, float):
        value = f"{value:.4g}"
    elif isinstance(value, list):
        value = ", ".join(cell(v) for v in value)
    elif value is None:
        value = ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def environment(env_example: str) -> str:
    """.env.example's variables, each with the comment lines just above its first mention (lines
    of variables in a row share the comment above them)."""
    rows, comment, after_variable = [], [], False
    for line in env_example.splitlines():
        match = VARIABLE.match(line)
        if match and match[1] not in {row["name"] for row in rows}:
            rows.append({"name": match[1], "example": match[2], "what": " ".join(comment)})
        elif line.startswith("#") and not match:
            comment = [] if after_variable else comment
            comment.append(line.lstrip("#").strip())
        elif not line.strip():
            comment = []
        after_variable = bool(match)
    return table(
        [
            {"variable": f"`{r['name']}`", "example": f"`{r['example']}`", "what": r["what"]}
            for r in rows
        ]
    )


def make_targets(makefile: str) -> str:
    """Every target the Makefile documents with a `## ` comment, in the Makefile's order."""
    rows = []
    for match in re.finditer(r"^([a-z][\w-]*):[^\n#]*##\s*(.+)$", makefile, re.M):
        rows.append({"command": f"`make {match[1]}`", "what": match[2].strip()})
    return table(rows)


def cli_help() -> str:
    """`penguin-pipeline --help` and each subcommand's, as argparse prints them."""
    from penguin_pipeline import cli

    blocks = []
    for argv in (["--help"], *[[c, "--help"] for c in subcommands(cli)]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            cli._command(argv)
        title = "penguin-pipeline " + " ".join(argv[:-1]) if len(argv) > 1 else "penguin-pipeline"
        blocks.append(f"## `{title.strip()}`\n\n```\n{out.getvalue().strip()}\n```")
    return "\n\n".join(blocks)


def subcommands(cli) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli._command(["--help"])
    return re.search(r"\{([\w,-]+)\}", out.getvalue())[1].split(",")


def openapi_document() -> dict:
    """The app's OpenAPI document, from a model fitted on the shipped data in a scratch board: the
    API refuses to start without a model, and /predict's body is the served version's schema."""
    import duckdb

    from penguin_pipeline.api.app import create_app
    from penguin_pipeline.processing import cleaning, modeling, tables
    from penguin_pipeline.processing.db import transaction
    from penguin_pipeline.processing.ingest import ingest_file
    from penguin_pipeline.settings import load_settings
    from penguin_pipeline.storage import boards, landing
    from penguin_pipeline.storage.locations import file_hash

    lter = landing.packaged_lter_file()
    with duckdb.connect() as con, tempfile.TemporaryDirectory() as tmp:
        tables.ensure_schema(con)
        with transaction(con):
            ingest_file(con, lter, lter.name, file_hash(lter))
        cleaning.rebuild_clean_table(con)
        fitted = modeling.fit_model(modeling.load_training_frame(con, tables.CLEAN))
        board = boards.board_from_url(f"{tmp}/board")
        boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
        env = {"PENGUIN_DATA_DIR": tmp, "PENGUIN_BOARD": f"{tmp}/board"}
        return create_app(load_settings(env)).openapi()


def api_routes(spec: dict) -> str:
    rows = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            rows.append(
                {
                    "route": f"`{method.upper()} {path}`",
                    "what": op.get("summary", ""),
                    "answers": ", ".join(sorted(op.get("responses", {}))),
                    "description": op.get("description", "").split("\n\n")[0],
                }
            )
    return table(rows)


def results_entries(results: dict) -> list[dict]:
    return results["history"] if "history" in results else [results]


def flatten(entry: dict, prefix: str = "") -> dict:
    """An entry's scalar figures, nested ones as `outer.inner`; per-run lists are left out (the
    page shows the medians the bench computed from them)."""
    flat = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif not (isinstance(value, list) and value and isinstance(value[0], (dict, list))):
            flat[f"{prefix}{key}"] = value
    return flat


HEADER = ("date", "machine", "peer", "note")


def entry_markdown(entry: dict) -> str:
    """One measurement: when, where and against what, then its rows as a table."""
    lines = [f"**{entry.get('date', 'undated')}**, {entry.get('machine', 'machine not recorded')}"]
    lines += [f"- peer: {entry['peer']}"] if entry.get("peer") else []
    lines += [f"- {entry['note']}"] if entry.get("note") else []
    rows = entry.get("rows")
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
        figures = {k: v for k, v in flatten(entry).items() if k not in HEADER}
        rows = [{"figure": k, "value": v} for k, v in figures.items()]
    return "\n".join(lines) + "\n\n" + table(rows)


def results_markdown(name: str, results: dict, plot: str | None) -> str:
    """A results file as Markdown, newest measurement first, its plot above."""
    parts = [f"![{name}: newest measurement](../generated/{plot})"] if plot else []
    parts += [entry_markdown(e) for e in reversed(results_entries(results))]
    return "\n\n".join(parts) + "\n"


def number(value) -> float:
    """A figure to draw, or NaN (no bar) for what was recorded as words ("stopped at 12 GiB")."""
    return float(value) if isinstance(value, (int, float)) else float("nan")


def drawable(entry: dict) -> bool:
    """The entry names a plot and has a figure for it (a run of some backends only may not)."""
    spec = entry.get("plot")
    values = [number(r.get(c)) for c in (spec or {}).get("y", []) for r in entry.get("rows", [])]
    return any(v > 0 for v in values)


def plot_results(results: dict, path: Path) -> bool:
    """Grouped bars of the newest entry that names a plot, {"x": column, "y": [columns]}, and has
    a figure for it."""
    entry = next((e for e in reversed(results_entries(results)) if drawable(e)), None)
    if entry is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec, rows = entry["plot"], entry["rows"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(spec["y"])
    for i, column in enumerate(spec["y"]):
        xs = [n + i * width for n in range(len(rows))]
        ax.bar(xs, [number(r.get(column)) for r in rows], width, label=column)
    ax.set_xticks([n + 0.4 - width / 2 for n in range(len(rows))])
    ax.set_xticklabels([str(r[spec["x"]]) for r in rows], fontsize=8)
    ax.set_ylabel(spec.get("ylabel", ""))
    ax.set_yscale("log" if spec.get("log") else "linear")
    ax.set_title(f"{entry.get('date', '')}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_benchmarks(out: Path, results_dir: Path = RESULTS) -> list[str]:
    names = []
    for path in sorted(results_dir.glob("*.json")):
        results = json.loads(path.read_text())
        plot = f"bench-{path.stem}.png"
        drawn = plot_results(results, out / plot)
        markdown = results_markdown(path.stem, results, plot if drawn else None)
        (out / f"bench-{path.stem}.md").write_text(markdown)
        newest = entry_markdown(results_entries(results)[-1])
        (out / f"bench-{path.stem}-latest.md").write_text(newest + "\n")
        names.append(path.stem)
    return names


def nav_files(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav] if nav.endswith(".md") else []
    items = nav.values() if isinstance(nav, dict) else nav
    return [f for item in items for f in nav_files(item)]


def missing_pages(config_text: str, docs_dir: Path) -> list[str]:
    """Nav entries without their page. The config holds a `!!python/name:` tag, hence the loader
    that knows no tags: only `nav` is read."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda *_: None)
    nav = yaml.load(config_text, Loader=Loader).get("nav", [])
    return [f for f in nav_files(nav) if not (docs_dir / f).is_file()]


def page_list(folder: Path) -> str:
    """Every page of a folder, by its first heading: pages added on other branches are linked
    from their section's index even before the navigation names them."""
    lines = []
    for page in sorted(folder.glob("*.md")):
        if page.name != "index.md":
            title = page.read_text().partition("\n")[0].lstrip("# ").strip()
            lines.append(f"- [{title}]({page.name})")
    return "\n".join(lines)


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "environment.md").write_text(environment((ROOT / ".env.example").read_text()) + "\n")
    (out / "make-targets.md").write_text(make_targets((ROOT / "Makefile").read_text()) + "\n")
    (out / "cli.md").write_text(cli_help() + "\n")
    spec = openapi_document()
    (out / "api-routes.md").write_text(api_routes(spec) + "\n")
    (out / "openapi.json").write_text(json.dumps(spec, indent=2))
    write_benchmarks(out)
    (out / "how-to-pages.md").write_text(page_list(out.parent / "how-to") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "mkdocs.yml")
    args = parser.parse_args(argv)
    docs_dir = args.config.parent / "docs"
    missing = missing_pages(args.config.read_text(), docs_dir)
    if missing:
        print(f"docs: nav names pages that do not exist: {', '.join(missing)}", file=sys.stderr)
        return 1
    generate(docs_dir / "generated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
