import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.wrk import RESULT_MARKER, WrkError, WrkSettings, build_script, parse_output, run_wrk
from tests.support.tools import require_programs

_LINE = (
    RESULT_MARKER + '{"requests":1200,"duration_s":2.0,"rps":600.0,"p50_us":1500,"p95_us":4000,"p99_us":9000,'
    '"mean_us":2000.5,"max_us":15000,"status_errors":3,"connect_errors":1,"read_errors":0,"write_errors":0,'
    '"timeouts":2,"exhausted":0,"statuses":{"200":1197,"401":3}}'
)


def test_parse_output_reads_the_result_line_among_wrk_summary() -> None:
    result = parse_output("Running 2s test @ http://127.0.0.1\n  1 threads and 8 connections\n" + _LINE + "\n")
    assert result.requests == 1200
    assert result.rps == 600.0
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (1.5, 4.0, 9.0)
    assert result.statuses == {200: 1197, 401: 3}
    # Status errors and socket errors (connect, timeouts) both count as failed requests.
    assert result.errors == 6


def test_parse_output_without_a_result_line_is_an_error() -> None:
    with pytest.raises(WrkError, match="no result line"):
        parse_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_build_script_sets_the_request_line_before_the_prelude() -> None:
    script = build_script("POST", '/v1/a"b', "function request() end", content_type="application/json")
    assert script.startswith('wrk.method = "POST"\nwrk.path = "/v1/a\\"b"\nwrk.headers["Content-Type"]')
    assert "function next_item()" in script
    assert script.rstrip().endswith("function request() end")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else delayed ACKs make every response take ~40 ms
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def do_GET(self) -> None:
        item = self.path.split("=", 1)[-1]
        with self.lock:
            self.seen[item] += 1
        status = 404 if item.startswith("missing") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # wrk drops its connections mid-request when it stops: not worth a traceback


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = Counter()
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def wrk() -> None:
    require_programs("wrk", why="the benchmark harness runs wrk for real")


def test_prelude_hands_out_each_item_once_then_reports_reuse_and_errors(server: str, tmp_path: Path) -> None:
    items = [f"item{i}" for i in range(40)] + ["missing1", "missing2"]
    data = tmp_path / "items.data"
    data.write_text("\n".join(items) + "\n")
    script = tmp_path / "s.lua"
    script.write_text(build_script("GET", "/", 'function request() return wrk.format(nil, "/?i=" .. next_item()) end'))

    result = run_wrk(server, script, WrkSettings(threads=2, connections=2, duration_s=1), data_file=data)

    seen = _Handler.seen
    sent = sum(seen.values())
    # wrk counts only responses that arrived before it stopped: up to one per connection
    # may have been served but not counted.
    assert sent - 2 <= result.requests <= sent
    # Far more requests than items: every item was sent, and reuse is reported, not hidden.
    assert set(seen) == set(items)
    # request() may also have run for a request wrk never got to send (one per connection).
    assert abs(result.exhausted - (sent - len(items))) <= 2
    assert result.exhausted > 0
    assert result.statuses[404] == result.status_errors
    assert result.statuses[404] >= 2
    assert result.statuses[200] + result.statuses[404] == result.requests


def test_build_script_renders_globals_and_the_expected_body_before_the_prelude() -> None:
    script = build_script("GET", "/", "", expect='"valid":true', lua_globals={"token": 'a"b', "pool": ["x", "y"]})
    head = script[: script.index("function next_item()")]
    assert 'expect_body = "\\"valid\\":true"' in head
    assert 'token = "a\\"b"' in head
    assert 'pool = {"x",\n"y"}' in head
    with pytest.raises(ValueError, match="not a Lua name"):
        build_script("GET", "/", "", lua_globals={"not-a-name": "x"})


def test_parse_output_reads_wrong_bodies_and_named_counts() -> None:
    line = _LINE.replace('"statuses"', '"check_errors":2,"statuses"').replace(
        '"statuses":{"200":1197,"401":3}}', '"statuses":{"200":1197,"401":3},"counts":{"home":7}}'
    )
    result = parse_output(line)
    assert result.check_errors == 2
    assert result.counts == {"home": 7}
    assert result.acknowledged == 1197
    # An older result line (without the new fields) still parses.
    assert parse_output(_LINE).check_errors == 0


@pytest.mark.usefixtures("wrk")
def test_prelude_counts_bodies_failing_the_check_as_errors_and_reports_counts(server: str, tmp_path: Path) -> None:
    script = tmp_path / "s.lua"
    lua = """
function request()
   count("sent")
   return wrk.format(nil, "/?i=x")
end
"""
    script.write_text(build_script("GET", "/", lua, expect="not in the body"))
    monitored: list[float] = []

    result = run_wrk(
        server,
        script,
        WrkSettings(threads=1, connections=2, duration_s=1),
        monitor=lambda: monitored.append(1.0),
        monitor_interval_s=0.2,
    )

    assert result.requests > 0
    # Every 200 said "ok", not what was expected: each one is a wrong body, and an error.
    assert result.check_errors == result.statuses[200] == result.status_errors
    assert result.errors >= result.requests
    assert "(no not in the body)" in result.first_error
    assert result.counts["sent"] >= result.requests
    assert result.counts["wrong body: no not in the body"] == result.check_errors
    assert len(monitored) >= 3  # called at the start and every 0.2 s while wrk ran
