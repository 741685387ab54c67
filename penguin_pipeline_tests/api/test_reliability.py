"""A bounded load on loopback with three model swaps: no failed request, no mixed versions, flat
memory.
"""

from __future__ import annotations

import threading
import time

import pandas as pd
import psutil
import pytest
import requests

from .conftest import Server, wait_for, write_version

pytestmark = pytest.mark.integration

ROWS = [
    {"species": s, "sex": x, "bill_length_mm": b}
    for s in ("Adelie", "Chinstrap", "Gentoo")
    for x in ("female", "male")
    for b in (35.0, 47.5, 58.25)
]


@pytest.fixture(scope="module")
def open_server(board_factory, tmp_path_factory):
    path, board = board_factory("reliability")
    server = Server(
        path, tmp_path_factory.mktemp("logs") / "server.log", PENGUIN_MODEL_POLL_SECONDS="0.2"
    )
    server.board = board
    yield server
    server.stop()


def test_open_server_says_it_is_open(open_server):
    assert "API is OPEN" in open_server.log()
    assert requests.post(open_server.url + "/predict", json=ROWS[0], timeout=5).status_code == 200


def test_three_swaps_under_load_fail_no_request_and_mix_no_versions(open_server, fitted):
    url = open_server.url + "/predict"
    base = fitted.pipeline.predict(pd.DataFrame(ROWS)).tolist()
    first = requests.post(url, json=ROWS[0], timeout=5).json()["model_version"]
    deltas = {first: 0.0}
    process = psutil.Process(open_server.process.pid)
    stop = threading.Event()
    failures, answered, versions_seen = [], [0], set()
    lock = threading.Lock()

    def client(worker: int):
        session = requests.Session()
        i = 0
        while not stop.is_set():
            batch = [ROWS[(worker + i) % len(ROWS)]] if i % 2 else ROWS  # single rows and batches
            i += 1
            try:
                response = session.post(
                    url, json=batch[0] if len(batch) == 1 else batch, timeout=10
                )
                body = response.json()
                with lock:
                    delta = deltas.get(body.get("model_version"))
                expected = [base[ROWS.index(r)] + (delta or 0.0) for r in batch]
                ok = (
                    response.status_code == 200
                    and delta is not None
                    and body["predict"] == pytest.approx(expected, abs=1e-6)
                )
            except Exception as exc:  # noqa: BLE001 - any failure counts
                ok, body = False, repr(exc)
            with lock:
                answered[0] += 1
                if ok:
                    versions_seen.add(body["model_version"])
                else:
                    failures.append(body)

    threads = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(8)]
    for t in threads:
        t.start()
    rss = []
    try:
        for k in (1, 2, 3):
            time.sleep(2.5)
            rss.append(process.memory_info().rss)
            with lock:  # register before writing: a response can only name a version we know
                pending = f"pending-{k}"
                deltas[pending] = None
            version = write_version(open_server.board, fitted, delta=1000.0 * k, tag=f"swap{k}")
            with lock:
                deltas[version] = 1000.0 * k
            assert wait_for(lambda version=version: version in versions_seen, timeout=20), (
                f"swap {k} never served"
            )
        time.sleep(2.0)
        rss.append(process.memory_info().rss)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert failures == [] and answered[0] > 200
    assert len(versions_seen) == 4
    assert "replacing" in open_server.log()
    growth_mb = (rss[-1] - rss[0]) / 2**20
    assert growth_mb < 40, (
        f"RSS grew {growth_mb:.1f} MiB over three swaps: {[r // 2**20 for r in rss]}"
    )
