"""`make bench-compare BASE=<commit>`: an earlier commit's `penguin-pipeline run` beside today's,
on the same landing files, in one run, taking turns (base, today, today, base, base, today ...).

The slow drift this catches: each change measured only against the one before it let the default
path lose 1.6x over a week. Run it before submitting a change to the data path.

The base commit is checked out into a git worktree (bench/results/compare/base-<sha>) with its own
environment from its own uv.lock, made once and reused. Landing files come from today's
`penguin-pipeline synth` (the same generator as `make bench-scale`), so both read the same bytes.
Each run gets a fresh data folder and Dagster instance; wall time and peak memory of the whole
process tree (bench_scale.measured), each step's seconds from the run's event log.

Environment: BENCH_BASE (commit, default origin/main or main), BENCH_COMPARE_N (rows, 1e7),
PENGUIN_DUCKDB_* (passed to both sides, e.g. PENGUIN_DUCKDB_MEMORY_LIMIT=1200MB as bench-scale),
BENCH_COMPARE_ROUNDS (2), BENCH_WAREHOUSE (unset: the DuckDB file; `lake`: a DuckLake on a scratch
Postgres catalog, both sides), BENCH_SCALE_DIR (where the landing files are kept, as bench-scale).
Results: docs/benchmarks/results/compare.json (the docs' benchmark page draws it).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_scale import LAKE_SERVER, kept, landing_for, measured  # noqa: E402
from bench.results_file import append_results, machine  # noqa: E402
from penguin_pipeline_tests.processes import instance_yaml_elsewhere, scratch_database  # noqa: E402

N = int(float(os.environ.get("BENCH_COMPARE_N", "1e7")))
ROUNDS = int(os.environ.get("BENCH_COMPARE_ROUNDS", "2"))
ON_LAKE = os.environ.get("BENCH_WAREHOUSE", "") == "lake"
COMPARE = ROOT / "bench" / "results" / "compare"


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def default_base() -> str:
    for ref in ("origin/main", "main"):
        try:
            return git("rev-parse", "--verify", "--quiet", ref)
        except subprocess.CalledProcessError:
            continue
    raise SystemExit("bench-compare: name the earlier commit: make bench-compare BASE=<commit>")


def environment(tree: Path) -> tuple[Path, list[str]]:
    """A checkout's environment for this comparison and the extra it is synced with: since the
    DuckDB split (pyproject's extras `file` and `lake`) the lake runs in .venv-lake and the file
    in .venv; before it one .venv served both."""
    if "\nlake = [" not in (tree / "pyproject.toml").read_text():
        return tree / ".venv", []
    name, extra = (".venv-lake", "lake") if ON_LAKE else (".venv", "file")
    return tree / name, ["--extra", extra]


def base_checkout(sha: str) -> Path:
    """A worktree of `sha` with its own environment synced from its own uv.lock (made once)."""
    tree = COMPARE / f"base-{sha[:10]}"
    if not (tree / "pyproject.toml").exists():
        shutil.rmtree(tree, ignore_errors=True)
        git("worktree", "prune")
        git("worktree", "add", "--detach", str(tree), sha)
    venv, extra = environment(tree)
    if not (venv / ".synced").exists():
        uv = shutil.which("uv") or str(ROOT / ".venv-uv" / "bin" / "uv")
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
        print(f"bench-compare: installing {sha[:10]}'s uv.lock into {venv}", flush=True)
        subprocess.run([uv, "sync", "--locked", "-q", *extra], cwd=tree, env=env, check=True)
        (venv / ".synced").touch()
    return tree


def instance_yaml(tree: Path) -> str:
    """The commit's own embedded instance file (it moved between the root and instance/)."""
    for place in ("dagster.yaml", "instance/dagster.yaml"):
        if (tree / place).exists():  # without the storage a root file keeps in the tree itself
            return instance_yaml_elsewhere((tree / place).read_text())
    raise SystemExit(f"bench-compare: no dagster.yaml in {tree}")


def run_env(tree: Path, name: str, landing: Path, catalog: str | None) -> dict:
    run_dir = COMPARE / f"run-{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    home = run_dir / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_yaml(tree))
    # The caller's DuckDB knobs (PENGUIN_DUCKDB_MEMORY_LIMIT, ...) apply to both sides alike.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PENGUIN_", "VIRTUAL_ENV")) or k.startswith("PENGUIN_DUCKDB")
    }
    env.update(
        DAGSTER_HOME=str(home),
        PENGUIN_DATA_DIR=str(run_dir / "data"),
        PENGUIN_LANDING=str(landing),
        PATH=f"{environment(tree)[0] / 'bin'}:{os.environ['PATH']}",
    )
    if catalog:
        env.update(
            PENGUIN_WAREHOUSE=f"ducklake:postgres:{catalog}",
            PENGUIN_LAKE_DATA=str(run_dir / "lake"),
        )
    return env


def one_run(tree: Path, name: str, landing: Path) -> dict:
    catalog = scratch_database("penguin_compare", LAKE_SERVER) if ON_LAKE else nullcontext()
    with catalog as dsn:
        env = run_env(tree, name, landing, dsn)
        result = measured([str(environment(tree)[0] / "bin" / "penguin-pipeline"), "run"], env)
        result.pop("samples")  # memory every 0.1 s: only the peak is compared, and kept
        result["steps"] = kept(N, f"compare-{name}", env)
    shutil.rmtree(COMPARE / f"run-{name}", ignore_errors=True)
    return result


def summary(runs: list[dict]) -> dict:
    steps = sorted({s for r in runs for s in r["steps"]})
    return {
        "seconds_median": round(statistics.median(r["seconds"] for r in runs), 2),
        "peak_gib_median": round(statistics.median(r["peak_gib"] for r in runs), 3),
        "steps_median": {
            s: round(statistics.median(r["steps"].get(s) or 0 for r in runs), 1) for s in steps
        },
    }


def comparison_rows(base: dict, today: dict) -> list[dict]:
    """The docs' table: the whole run, then each step, base beside today (medians, seconds)."""
    pairs = [("whole run (wall)", base["seconds_median"], today["seconds_median"])]
    steps = sorted(set(base["steps_median"]) | set(today["steps_median"]))
    pairs += [(s, base["steps_median"].get(s), today["steps_median"].get(s)) for s in steps]
    return [
        {
            "step": name,
            "base_s": b,
            "today_s": t,
            "today/base": round(t / b, 2) if b and t else "-",
        }
        for name, b, t in pairs
    ]


def main() -> None:
    base_sha = git("rev-parse", os.environ.get("BENCH_BASE") or default_base())
    head_sha = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    base_tree = base_checkout(base_sha)
    landing = landing_for(N, dict(os.environ))
    runs: dict[str, list[dict]] = {"base": [], "today": []}
    sides = [("base", base_tree), ("today", ROOT)]
    for round_ in range(ROUNDS):
        # Which side goes first alternates: the run after another one can find the machine's
        # memory and page cache warmer or colder, and that should not always favour one side.
        for name, tree in sides if round_ % 2 == 0 else sides[::-1]:
            result = one_run(tree, name, landing)
            runs[name].append(result)
            print(
                f"round {round_ + 1} {name:5} {result['seconds']:7.1f} s "
                f"{result['peak_gib']:.2f} GiB {result['steps']}",
                flush=True,
            )
    base, today = summary(runs["base"]), summary(runs["today"])
    ratios = [t["seconds"] / b["seconds"] for b, t in zip(runs["base"], runs["today"], strict=True)]
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "landing_rows": N,
        "warehouse": "ducklake" if ON_LAKE else "duckdb file",
        "duckdb_settings": {k: v for k, v in os.environ.items() if k.startswith("PENGUIN_DUCKDB")},
        "landing": str(landing),
        "base": {"commit": base_sha, **base, "runs": runs["base"]},
        "today": {"commit": head_sha, "uncommitted_changes": dirty, **today, "runs": runs["today"]},
        "time_ratio_today_over_base": [round(r, 3) for r in ratios],
        "peer": f"the same command at {base_sha[:10]}, on the same landing files, taking turns "
        "(base first in odd rounds, today first in even ones)",
        "rows": comparison_rows(base, today),
        "plot": {"x": "step", "y": ["base_s", "today_s"], "ylabel": "seconds (median)"},
    }
    path = append_results("compare", results)
    print(
        f"\nbase {base_sha[:10]}: {base['seconds_median']} s, {base['peak_gib_median']} GiB "
        f"{base['steps_median']}\ntoday {head_sha[:10]}{' (+uncommitted)' if dirty else ''}: "
        f"{today['seconds_median']} s, {today['peak_gib_median']} GiB {today['steps_median']}\n"
        f"today/base per pair: {', '.join(f'{r:.2f}x' for r in ratios)}\nresults: {path}"
    )


if __name__ == "__main__":
    main()
