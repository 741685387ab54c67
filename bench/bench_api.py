"""`make bench-api`: our prediction API beside stock vetiver.VetiverAPI, same model, same load, one run.

Both servers: one uvicorn worker on 127.0.0.1, no access log, the same penguin_model version from
the configured board. Load: wrk (Debian package `wrk`; `apt-get install -y wrk`) when present, else
bench/api_loadgen.py (pure Python, bounded). Scenarios: single rows and 1000-row batches at 16
concurrent connections. Prints requests/s, rows/s, p50/p99 and ratios ours/stock, plus what each
server answers to an unknown species, an empty list and a negative bill length.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from penguin_pipeline.settings import load_settings  # noqa: E402
from penguin_pipeline.storage import boards  # noqa: E402
from penguin_pipeline_tests.processes import free_port  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]


def start(cmd: list[str], port: int, env: dict) -> subprocess.Popen:
    process = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


def wrk(url: str, body: bytes, connections: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(
            f'local f = io.open("{body_file}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\n'
            'wrk.headers["Content-Type"] = "application/json"\n')
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
                             capture_output=True, text=True, timeout=seconds + 60).stdout

    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": ms("50"), "p99_ms": ms("99"), "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1) if errors else "", "tool": "wrk"}


def load(url, body, connections, seconds, use_wrk):
    if use_wrk:
        return wrk(url, body, connections, seconds)
    import api_loadgen

    return api_loadgen.run(url, body, connections, seconds)


def answers(url: str) -> dict:
    cases = {"unknown species": [{"species": "Emperor", "sex": "male", "bill_length_mm": 45.0}],
             "empty list": [],
             "negative bill length": [{"species": "Gentoo", "sex": "male", "bill_length_mm": -45.0}]}
    return {name: requests.post(url, json=body, timeout=30).status_code for name, body in cases.items()}


def batch(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"species": str(rng.choice(["Adelie", "Chinstrap", "Gentoo"])), "sex": str(rng.choice(["female", "male"])),
             "bill_length_mm": round(float(rng.uniform(32, 60)), 1)} for _ in range(n)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="per scenario and server (bounded)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--python-loadgen", action="store_true", help="use the pure-Python generator even if wrk exists")
    args = parser.parse_args(argv)
    use_wrk = shutil.which("wrk") is not None and not args.python_loadgen
    if not use_wrk:
        print("wrk not found (Debian/Ubuntu: apt-get install -y wrk): using bench/api_loadgen.py, a slower "
              "pure-Python generator; absolute figures are lower bounds, ratios still compare.")

    settings = load_settings()
    board = boards.board_from_url(settings.board_url, settings.aws_endpoint_url)
    facts = boards.latest_model_facts(board)
    if facts is None:
        raise SystemExit(f"no penguin_model on {settings.board_url}: run `make run` first")
    version = facts["version"]
    env = {**os.environ, "PENGUIN_MODEL_VERSION": version, "PENGUIN_MODEL_POLL_SECONDS": "0"}
    env.pop("PENGUIN_API_KEYS", None)
    env.pop("PENGUIN_API_KEYS_FILE", None)

    single = json.dumps([batch(1)[0]]).encode()
    thousand = json.dumps(batch(1000)).encode()
    scenarios = [("single row", single, 1), ("1000-row batch", thousand, 1000)]
    servers = {
        "ours": [sys.executable, "-m", "penguin_pipeline.api", "--no-access-log"],
        "stock VetiverAPI": [sys.executable, str(PROJECT / "bench" / "api_stock_server.py")],
    }
    results: dict[str, dict] = {}
    for name, cmd in servers.items():
        port = free_port()
        full = cmd + (["--port", str(port)] if name == "ours" else [str(port), version])
        process = start(full, port, env)
        try:
            url = f"http://127.0.0.1:{port}/predict"
            results[name] = {"answers": answers(url)}
            for label, body, rows in scenarios:
                requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)  # warm up
                figures = load(url, body, args.connections, args.seconds, use_wrk)
                figures["rows_per_s"] = figures["requests_per_s"] * rows
                results[name][label] = figures
        finally:
            stop(process)

    print(f"\nprediction API benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, model {version}, {args.connections} connections, "
          f"{args.seconds:g} s per scenario, load by {'wrk' if use_wrk else 'bench/api_loadgen.py'}")
    print(f"{'scenario':<16}{'server':<18}{'req/s':>10}{'rows/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for label, _, _ in scenarios:
        for name in servers:
            f = results[name][label]
            print(f"{label:<16}{name:<18}{f['requests_per_s']:>10.0f}{f['rows_per_s']:>12.0f}{f['p50_ms']:>9.2f}"
                  f"{f['p99_ms']:>9.2f}{f['non_2xx']:>9}")
        ours, stock = results["ours"][label], results["stock VetiverAPI"][label]
        print(f"{'':<16}{'ratio ours/stock':<18}{ours['requests_per_s'] / stock['requests_per_s']:>10.1f}x"
              f"{'':>11}{'':>9}{ours['p99_ms'] / stock['p99_ms'] if stock['p99_ms'] else float('nan'):>9.2f}x")
    print("\nanswers to bad input (HTTP status):")
    for name in servers:
        print(f"  {name:<18}{results[name]['answers']}")
    print("\nnote: stock non-2xx during load are counted above; ours must be 0.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
