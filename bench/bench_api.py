"""`make bench-api`: our prediction API beside stock vetiver.VetiverAPI: same model, load and run.

Both servers: one uvicorn worker on 127.0.0.1, no access log, the same penguin_model version from
the configured board, both running for the whole benchmark. Load: wrk (`make wrk` installs
Debian's package) when present, else bench/api_loadgen.py (pure Python, bounded). Scenarios:
single rows and 1000-row batches at 16 connections. A third server, bench/api_bare_server.py (a
FastAPI route that reads the body and answers a fixed number), shows the ceiling: what one
uvicorn worker can answer through FastAPI on this machine at all. Rounds alternate the servers
scenario by scenario, so a busy moment of a shared machine hits all; the summary gives each
figure's median over the rounds, the ratio of medians, and the slowest round's ratio. Also prints
what ours and stock answer to an unknown species, an empty list and a negative bill length.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.results_file import append_results, machine  # noqa: E402
from penguin_pipeline.settings import load_settings  # noqa: E402
from penguin_pipeline.storage import boards  # noqa: E402
from penguin_pipeline_tests.processes import free_port  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
SERVERS = ("ours", "stock VetiverAPI", "bare FastAPI")


def start(cmd: list[str], port: int, env: dict) -> subprocess.Popen:
    process = subprocess.Popen(
        cmd, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server {cmd} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server {cmd} did not start in 90 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def wrk(url: str, body: bytes, connections: int, threads: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(
            f'local f = io.open("{body_file}", "rb")\nwrk.method = "POST"\n'
            'wrk.body = f:read("*a")\nf:close()\nwrk.headers["Content-Type"] = "application/json"\n'
        )
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency"]
        out = subprocess.run(
            [*command, "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60
        ).stdout

    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def load(url, body, args, use_wrk):
    if use_wrk:
        return wrk(url, body, args.connections, args.threads, args.seconds)
    import api_loadgen

    return api_loadgen.run(url, body, args.connections, args.seconds)


def answers(url: str) -> dict:
    cases = {
        "unknown species": [{"species": "Emperor", "sex": "male", "bill_length_mm": 45.0}],
        "empty list": [],
        "negative bill length": [{"species": "Gentoo", "sex": "male", "bill_length_mm": -45.0}],
    }
    return {
        name: requests.post(url, json=body, timeout=30).status_code for name, body in cases.items()
    }


def batch(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    species, sexes = ["Adelie", "Chinstrap", "Gentoo"], ["female", "male"]
    return [
        {
            "species": str(rng.choice(species)),
            "sex": str(rng.choice(sexes)),
            "bill_length_mm": round(float(rng.uniform(32, 60)), 1),
        }
        for _ in range(n)
    ]


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="per scenario, server and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--python-loadgen", action="store_true", help="even if wrk exists")
    args = parser.parse_args(argv)
    use_wrk = shutil.which("wrk") is not None and not args.python_loadgen
    if not use_wrk:
        print(
            "wrk not found (`make wrk` installs it): using bench/api_loadgen.py, a slower "
            "pure-Python generator; absolute figures are lower bounds, ratios still compare."
        )

    settings = load_settings()
    board = boards.board_from_url(settings.board_url, settings.aws_endpoint_url)
    facts = boards.latest_model_facts(board)
    if facts is None:
        raise SystemExit(f"no penguin_model on {settings.board_url}: run `make run` first")
    version = facts["version"]
    env = {**os.environ, "PENGUIN_MODEL_VERSION": version, "PENGUIN_MODEL_POLL_SECONDS": "0"}
    env.pop("PENGUIN_API_KEYS", None)
    env.pop("PENGUIN_API_KEYS_FILE", None)

    scenarios = [
        ("single row", json.dumps([batch(1)[0]]).encode(), 1),
        ("1000-row batch", json.dumps(batch(1000)).encode(), 1000),
    ]
    ports = {name: free_port() for name in SERVERS}
    commands = {
        "ours": [sys.executable, "-m", "penguin_pipeline.api", "--no-access-log"]
        + ["--port", str(ports["ours"])],
        "stock VetiverAPI": [sys.executable, str(PROJECT / "bench" / "api_stock_server.py")]
        + [str(ports["stock VetiverAPI"]), version],
        "bare FastAPI": [sys.executable, str(PROJECT / "bench" / "api_bare_server.py")]
        + [str(ports["bare FastAPI"])],
    }
    urls = {name: f"http://127.0.0.1:{port}/predict" for name, port in ports.items()}
    runs: dict[tuple[str, str], list[dict]] = {}
    load_before = os.getloadavg()
    processes = {}
    try:
        for name in SERVERS:
            processes[name] = start(commands[name], ports[name], env)
        bad_input = {name: answers(urls[name]) for name in SERVERS[:2]}
        for _, body, _ in scenarios:  # warm up
            for name in SERVERS:
                headers = {"Content-Type": "application/json"}
                requests.post(urls[name], data=body, headers=headers, timeout=60).raise_for_status()
        for round_number in range(1, args.rounds + 1):
            for label, body, rows in scenarios:
                for name in SERVERS:
                    figures = load(urls[name], body, args, use_wrk)
                    figures["rows_per_s"] = figures["requests_per_s"] * rows
                    runs.setdefault((label, name), []).append(figures)
                    print(
                        f"round {round_number} {label:<15} {name:<17} "
                        f"{figures['requests_per_s']:>9.0f} req/s  p99 {figures['p99_ms']:.2f} ms",
                        flush=True,
                    )
    finally:
        for process in processes.values():
            stop(process)

    tool = f"wrk -t{args.threads}" if use_wrk else "bench/api_loadgen.py"
    print(
        f"\nprediction API benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, python {platform.python_version()}, model {version}, "
        f"{tool}, {args.connections} connections, {args.seconds:g} s x {args.rounds} rounds "
        f"per scenario and server; load average before {load_before[0]:.2f}, "
        f"after {os.getloadavg()[0]:.2f}"
    )
    print("medians over the rounds:")
    head = f"{'scenario':<16}{'server':<18}{'req/s':>10}{'rows/s':>12}{'p50 ms':>9}{'p99 ms':>9}"
    print(head + f"{'non-2xx':>9}")
    for label, _, _ in scenarios:
        for name in SERVERS:
            r = runs[(label, name)]
            print(
                f"{label:<16}{name:<18}{median(r, 'requests_per_s'):>10.0f}"
                f"{median(r, 'rows_per_s'):>12.0f}{median(r, 'p50_ms'):>9.2f}"
                f"{median(r, 'p99_ms'):>9.2f}{sum(run['non_2xx'] for run in r):>9}"
            )
        ours, stock = runs[(label, "ours")], runs[(label, "stock VetiverAPI")]
        ratios = [
            o["requests_per_s"] / s["requests_per_s"] for o, s in zip(ours, stock, strict=True)
        ]
        ratio = median(ours, "requests_per_s") / median(stock, "requests_per_s")
        print(
            f"{'':<16}ours/stock: {ratio:.1f}x (rounds: {', '.join(f'{x:.1f}x' for x in ratios)}); "
            f"our slowest round {min(run['requests_per_s'] for run in ours):.0f} req/s, "
            f"worst p99 {max(run['p99_ms'] for run in ours):.2f} ms"
        )
        ceiling = median(runs[(label, "bare FastAPI")], "requests_per_s")
        print(
            f"{'':<16}ours/bare FastAPI: {median(ours, 'requests_per_s') / ceiling:.2f} "
            f"(the bare route is {ceiling / median(stock, 'requests_per_s'):.1f}x stock)"
        )
    print(f"results: {append_results('api', api_entry(runs, scenarios, tool, args, load_before))}")
    print("\nanswers to bad input (HTTP status):")
    for name, statuses in bad_input.items():
        print(f"  {name:<18}{statuses}")
    print("\nnote: stock non-2xx during load are counted above; ours must be 0.")
    return 0


def api_entry(runs, scenarios, tool, args, load_before) -> dict:
    """The medians as the docs' bench-api page shows them (docs/benchmarks/results/api.json)."""
    rows = [
        {
            "scenario": label,
            "server": name,
            "req/s": round(median(runs[(label, name)], "requests_per_s")),
            "rows/s": round(median(runs[(label, name)], "rows_per_s")),
            "p50 ms": round(median(runs[(label, name)], "p50_ms"), 2),
            "p99 ms": round(median(runs[(label, name)], "p99_ms"), 2),
        }
        for label, _, _ in scenarios
        for name in SERVERS
    ]
    return {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": machine(),
        "peer": "stock vetiver.VetiverAPI; a bare FastAPI route (the ceiling)",
        "note": f"{tool}, {args.connections} connections, {args.seconds:g} s x {args.rounds} "
        f"rounds, medians; load average before {load_before[0]:.2f}",
        "rows": rows,
        "plot": {"x": "server", "y": ["req/s"], "ylabel": "requests/s", "log": True},
    }


if __name__ == "__main__":
    sys.exit(main())
