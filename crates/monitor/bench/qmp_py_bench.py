#!/usr/bin/env python3
"""QMP round-trip latency and pipelined throughput with PyPI `qemu.qmp`.

The Python counterpart of `examples/qmp_bench.rs`, so the xtask can run all
three clients (bare socket, kvmtest-monitor, qemu.qmp) against the same QEMU:

    python3 qmp_py_bench.py /path/to/qmp.sock [--calls 10000] [--inflight 10000]

Prints one JSON line with the same keys as the Rust benchmark's per-client
lines: client, calls, inflight, p50_us, p99_us, mean_us, pipelined_ops_per_s.
QEMU serves one QMP client at a time, so run it while no other client is
connected. Needs `pip install qemu.qmp`.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time

try:
    from qemu.qmp import QMPClient
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("qmp_py_bench.py needs the qemu.qmp package: pip install qemu.qmp")


def percentile(sorted_values, p):
    return sorted_values[round((len(sorted_values) - 1) * p)]


async def bench(socket_path, calls, inflight):
    client = QMPClient("qmp-py-bench")
    await client.connect(socket_path)
    try:
        for _ in range(calls // 10):  # warm-up
            await client.execute("query-status")
        lat = []
        for _ in range(calls):
            t = time.perf_counter()
            await client.execute("query-status")
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        await asyncio.gather(*(client.execute("query-status") for _ in range(inflight)))
        pipelined = time.perf_counter() - t
    finally:
        await client.disconnect()
    lat.sort()
    return {
        "client": "qemu.qmp",
        "calls": calls,
        "inflight": inflight,
        "p50_us": round(percentile(lat, 0.50) * 1e6, 2),
        "p99_us": round(percentile(lat, 0.99) * 1e6, 2),
        "mean_us": round(statistics.fmean(lat) * 1e6, 2),
        "pipelined_ops_per_s": round(inflight / pipelined),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("socket", help="QEMU's QMP unix socket")
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--inflight", type=int, default=10_000)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(bench(args.socket, args.calls, args.inflight))))


if __name__ == "__main__":
    main()
