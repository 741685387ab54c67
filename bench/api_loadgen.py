"""Bounded HTTP/1.1 keep-alive load generator on loopback, for machines without wrk.

C connections each send the same POST back to back for D seconds; reports requests/s, latency
percentiles and non-2xx counts. Slower than wrk (it is Python sharing the CPU with the server), so
figures from it are lower bounds; ratios between two servers measured the same way stay meaningful.
"""

from __future__ import annotations

import asyncio
import time


async def _connection(host, port, request: bytes, until: float, latencies: list, statuses: dict):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def run(url: str, body: bytes, connections: int, seconds: float) -> dict:
    host_port = url.split("//", 1)[1].split("/", 1)
    host, port = host_port[0].split(":")
    path = "/" + host_port[1]
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def main():
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *[
                _connection(host, int(port), request, until, latencies, statuses)
                for _ in range(connections)
            ]
        )

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pick(q):
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
            if latencies
            else float("nan")
        )

    return {
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "non_2xx": sum(n for s, n in statuses.items() if not 200 <= s < 300),
        "tool": "python-loadgen",
    }
