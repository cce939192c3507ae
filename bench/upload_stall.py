"""Upload stall: does a 1 MiB ride-log upload delay other requests of the same BFF process?

``python -m bench.upload_stall --admin-database-url … --redis-url … [--processes 1] [--uploads 5]``
starts the benchmark system with one BFF worker (``onecity serve --workers 1``, so the upload
and the probes share one event loop), registers a ride device for a real-name citizen, and
then, for each upload, sends a 1 MiB validator log (about 2,800 ride codes, every line valid
and new) while a second thread probes ``GET /health/live`` every 5 ms on its own connection.
It reports each probe's response time during the uploads (max, p99, p50) next to the same
probes on the idle server beforehand (the host's and the client's own noise), and how long the
uploads took. ``--processes`` is ``ONECITY_RIDE_VERIFY_PROCESSES`` (``0``: verify in a thread
of the BFF process, as before the worker processes).

Numbers from a shared or contended machine are not results; record them with the load average.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.context import BenchContext
from bench.fixtures import create_citizens, partner_token
from bench.standalone import standalone_parser, started_system
from codes.ride import make_ride_code
from codes.ride_devices import POP_CONTEXT
from core.signing import b64url_decode, b64url_encode

__all__ = ["main", "measure"]

_POOL = 21  # bench.fixtures citizen pool of this scenario
_MIB = 1024 * 1024
_PROBE_EVERY_S = 0.005


async def _device(ctx: BenchContext) -> tuple[Ed25519PrivateKey, bytes]:
    """A registered ride device (key and certificate) of a citizen whose transit card is active."""
    citizens = await create_citizens(ctx, 10, pool=_POOL)
    async with ctx.http() as http:
        for citizen in citizens:  # a few simulated transit cards are blocked: take the first active
            headers = {"Authorization": f"Bearer {citizen.access_token}"}
            challenge = await http.post("/v1/me/ride-devices/challenge", headers=headers)
            challenge.raise_for_status()
            nonce = challenge.json()["nonce"]
            key = Ed25519PrivateKey.generate()
            raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            body = {
                "public_key": b64url_encode(raw),
                "nonce": nonce,
                "signature": b64url_encode(key.sign(POP_CONTEXT + nonce.encode() + raw)),
            }
            response = await http.post("/v1/me/ride-devices", json=body, headers=headers)
            if response.status_code == 200:
                return key, b64url_decode(response.json()["certificate"])
    raise RuntimeError("no citizen with an active transit card among the first ten")


def _log(key: Ed25519PrivateKey, certificate: bytes, first_counter: int, validator: str) -> tuple[bytes, int]:
    """A validator log of new, valid ride codes, as large as fits in 1 MiB; its lines."""
    now = time.time()
    head = json.dumps({"validator_id": validator, "rides": []}).encode()
    lines: list[bytes] = []
    size = len(head)
    counter = first_counter
    while True:
        line = json.dumps(
            {"code": make_ride_code(key, certificate, counter=counter, now=now - 20), "scanned_at": now - 10}
        ).encode()
        if size + len(line) + 2 > _MIB:
            break
        lines.append(line)
        size += len(line) + 2
        counter += 1
    return head[:-2] + b", ".join(lines) + b"]}", len(lines)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _summary(values_s: list[float]) -> dict[str, Any]:
    return {
        "probes": len(values_s),
        "max_ms": round(1000 * max(values_s), 2),
        "p99_ms": round(1000 * _percentile(values_s, 0.99), 2),
        "p50_ms": round(1000 * statistics.median(values_s), 2),
    }


def _probe(base_url: str, stop: threading.Event, out: list[float]) -> None:
    """``GET /health/live`` every 5 ms (or at once after a slower answer) until ``stop``."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        http.get("/health/live").raise_for_status()  # the connection is open before timing
        due = time.perf_counter()
        while not stop.is_set():
            started = time.perf_counter()
            http.get("/health/live").raise_for_status()
            out.append(time.perf_counter() - started)
            due += _PROBE_EVERY_S
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                due = time.perf_counter()


def _probed(base_url: str, work: Any) -> list[float]:
    """Probe while ``work()`` runs (or for ``work`` seconds when it is a number)."""
    stop = threading.Event()
    latencies: list[float] = []
    prober = threading.Thread(target=_probe, args=(base_url, stop, latencies), daemon=True)
    prober.start()
    try:
        time.sleep(0.2)  # probing before the work starts
        if callable(work):
            work()
        else:
            time.sleep(work)
        time.sleep(0.05)
    finally:
        stop.set()
        prober.join(timeout=10)
    return latencies


def measure(ctx: BenchContext, *, uploads: int) -> dict[str, Any]:
    """Register a device, warm the server up, probe idle, then probe during ``uploads`` uploads."""
    key, certificate = asyncio.run(_device(ctx))
    token = asyncio.run(partner_token(ctx))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [_log(key, certificate, n * 10_000, f"bench-{n}") for n in range(uploads + 1)]
    results: list[dict[str, Any]] = []
    with httpx.Client(base_url=ctx.base_url, timeout=60) as http:

        def upload(body: bytes, lines: int) -> None:
            started = time.perf_counter()
            response = http.post("/v1/codes/ride-logs", content=body, headers=headers)
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            answer = response.json()
            if answer["accepted"] != lines:
                raise RuntimeError(f"accepted {answer['accepted']} of {lines} lines: {answer['rejected'][:3]}")
            results.append({"bytes": len(body), "lines": lines, "seconds": round(elapsed, 3)})

        upload(*bodies[0])  # warm-up: starts the verifier process(es), fills the key caches
        results.clear()
        idle = _probed(ctx.base_url, 2.0)
        busy: list[float] = []
        for body, lines in bodies[1:]:
            busy.extend(_probed(ctx.base_url, lambda b=body, n=lines: upload(b, n)))
    return {
        "uploads": results,
        "idle": _summary(idle),
        "during_uploads": _summary(busy),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the upload-stall benchmark and print its numbers as JSON."""
    parser = standalone_parser("python -m bench.upload_stall", __doc__, workdir=Path(".onecity/bench-upload-stall"))
    parser.add_argument("--processes", type=int, default=1, help="ONECITY_RIDE_VERIFY_PROCESSES of the BFF")
    parser.add_argument("--uploads", type=int, default=5)
    args = parser.parse_args(argv)
    # One BFF worker: the upload and the probes share one event loop.
    with started_system(args, workers=1, extra_env={"ONECITY_RIDE_VERIFY_PROCESSES": str(args.processes)}) as system:
        result = measure(system.context(duration_s=60, connections=4), uploads=args.uploads)
    print(json.dumps({"processes": args.processes, **result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
