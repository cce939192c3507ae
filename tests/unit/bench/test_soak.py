import itertools
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.soak import MIX, ProcessMemory, mix_sequence, soak_script
from bench.wrk import WrkSettings, run_wrk


def test_mix_sequence_keeps_the_weights_and_spreads_each_kind() -> None:
    sequence = mix_sequence()
    assert Counter(sequence) == dict(MIX)
    assert len(sequence) == sum(weight for _, weight in MIX)
    # The heaviest kind is spread out, not sent in a block.
    heaviest = max(MIX, key=lambda kind: kind[1])[0]
    positions = [i for i, kind in enumerate(sequence) if kind == heaviest]
    gaps = [b - a for a, b in itertools.pairwise(positions)]
    assert min(gaps) >= 2
    assert max(gaps) <= 10
    assert mix_sequence([("a", 1), ("b", 3)]).count("b") == 3


def test_process_memory_compares_each_process_with_itself_after_the_warm_up() -> None:
    steady = ProcessMemory(1, "worker 1", [(0, 80_000), (30, 95_000), (60, 100_000), (300, 104_000), (600, 105_000)])
    assert steady.baseline(60) == (60, 100_000)
    last, peak = steady.growth(60)
    assert last == pytest.approx(0.05)
    assert peak == pytest.approx(0.05)
    assert steady.within(60)  # the growth during the warm-up does not count
    leaking = ProcessMemory(2, "worker 2", [(0, 80_000), (60, 100_000), (300, 112_000), (600, 108_000)])
    assert leaking.growth(60) == (pytest.approx(0.08), pytest.approx(0.12))
    assert not leaking.within(60)
    assert ProcessMemory(3, "gone").growth(60) == (0.0, 0.0)


def test_soak_script_is_paced_only_when_asked() -> None:
    data = {"tokens": ["t"], "partner_basic": "Basic x", "partner_token": "p"}
    assert "function delay()" not in soak_script(data, interval_ms=None)
    paced = soak_script(data, interval_ms=12.5, otp_first=7)
    assert "function delay()" in paced
    assert 'interval_ms = "12.500000"' in paced
    assert 'otp_first = "7"' in paced


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    paths: Counter[str] = Counter()
    lock = threading.Lock()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with self.lock:
            self.paths[self.path.split("?")[0]] += 1
        body = b'{"payload":"OC1:abc"}' if self.path.startswith("/v1/me/codes/transit") else b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.paths = Counter()
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_paced_mix_keeps_its_rate_and_verifies_the_codes_it_was_issued(server: str, tmp_path: Path) -> None:
    data = tmp_path / "refresh.data"
    data.write_text("\n".join(f"rt.{i}" for i in range(1000)) + "\n")
    script = tmp_path / "soak.lua"
    # 100 requests/s over 8 connections for 2 s: about 200 requests, whatever the server could do.
    script.write_text(soak_script({"tokens": ["a", "b"], "partner_basic": "B", "partner_token": "p"}, interval_ms=10))

    result = run_wrk(server, script, WrkSettings(threads=1, connections=8, duration_s=2), data_file=data)

    assert 150 <= result.requests <= 230
    assert result.errors == 0
    paths = _Handler.paths
    # Every verification is of a code the script was issued (the server answered a payload).
    assert paths["/v1/codes/verify"] > 0
    assert paths["/v1/codes/verify"] <= paths["/v1/me/codes/transit"]
    assert set(result.counts) <= {kind for kind, _ in MIX}
    assert result.counts["home"] >= result.counts["client_credentials"]
