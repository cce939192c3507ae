"""``onecity verify``: output and exit statuses."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from codes.payload import build_claims, issue_code
from codes.ride import issue_device_certificate, make_ride_code
from codes.verify_cli import main
from core.signing import Ed25519Signer

from .conftest import NOW


@pytest.fixture
def keys_file(tmp_path: Path, signer: Ed25519Signer) -> Path:
    path = tmp_path / "codes-keys.json"
    path.write_text(json.dumps({"keys": [signer.jwk()]}))
    return path


@pytest.fixture
def health_code(signer: Ed25519Signer) -> str:
    return issue_code(signer, build_claims("health", issuer="cs", subject="sub", status="Y", now=NOW, rule_version=1))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any] | None, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) <= 1  # one JSON line, or nothing on errors
    return status, json.loads(lines[0]) if lines else None, captured.err


def test_valid_code(capsys: pytest.CaptureFixture[str], keys_file: Path, health_code: str) -> None:
    status, out, _ = _run(capsys, health_code, "--keys", str(keys_file), "--now", str(NOW + 5), "--type", "health")
    assert status == 0
    assert out is not None
    assert (out["valid"], out["reason"], out["code_type"]) == (True, None, "health")
    assert out["claims"]["st"] == "Y"


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--now", str(NOW + 3600)], "expired"),
        (["--now", str(NOW), "--type", "transit"], "wrong_type"),
        (["--now", str(NOW), "--issuer", "sz"], "unknown_key"),
    ],
)
def test_invalid_code(
    capsys: pytest.CaptureFixture[str], keys_file: Path, health_code: str, extra: list[str], reason: str
) -> None:
    status, out, _ = _run(capsys, health_code, "--keys", str(keys_file), *extra)
    assert status == 1
    assert out is not None
    assert (out["valid"], out["reason"]) == (False, reason)


def test_garbage_is_invalid_not_an_error(capsys: pytest.CaptureFixture[str], keys_file: Path) -> None:
    status, out, _ = _run(capsys, "hello", "--keys", str(keys_file))
    assert (status, out and out["reason"]) == (1, "malformed")


def test_ride_code(capsys: pytest.CaptureFixture[str], keys_file: Path, signer: Ed25519Signer) -> None:
    device = Ed25519PrivateKey.generate()
    cert = issue_device_certificate(
        signer, device_public_key=device.public_key(), subject="rider", issuer="cs", now=NOW
    )
    code = make_ride_code(device, cert, counter=3, now=NOW + 10)
    status, out, _ = _run(capsys, code, "--keys", str(keys_file), "--now", str(NOW + 12))
    assert status == 0
    assert out is not None
    assert (out["format"], out["code_type"], out["subject"], out["counter"]) == ("ride", "transit", "rider", 3)
    status, out, _ = _run(capsys, code, "--keys", str(keys_file), "--now", str(NOW + 12), "--type", "health")
    assert (status, out and out["reason"]) == (1, "wrong_type")
    status, out, _ = _run(capsys, code, "--keys", str(keys_file), "--now", str(NOW + 500))
    assert (status, out and out["reason"]) == (1, "expired")


def test_payload_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, keys_file: Path, health_code: str
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(health_code + "\n"))
    status, out, _ = _run(capsys, "-", "--keys", str(keys_file), "--now", str(NOW))
    assert status == 0
    assert out is not None
    assert out["valid"]


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no payload, no keys
        ["OC1:x"],  # --keys is required
        ["OC1:x", "--keys", "/nonexistent/keys.json"],
        ["OC1:x", "--keys", "KEYS", "--type", "passport"],
        ["OC1:x", "--keys", "KEYS", "--now", "yesterday"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], keys_file: Path, argv: list[str]) -> None:
    status, out, err = _run(capsys, *[str(keys_file) if a == "KEYS" else a for a in argv])
    assert status == 2
    assert out is None
    assert json.loads(err.strip().splitlines()[-1])["error"]


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"keys": []}', '{"keys": [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}]}'],
)
def test_bad_keys_file_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    status, out, _ = _run(capsys, "OC1:x", "--keys", str(path))
    assert (status, out) == (2, None)


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--keys" in capsys.readouterr().out


@pytest.fixture
def jwks_server(signer: Ed25519Signer) -> Iterator[str]:
    body = json.dumps({"keys": [signer.jwk()]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/v1/codes/keys":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_keys_from_url(capsys: pytest.CaptureFixture[str], jwks_server: str, health_code: str) -> None:
    status, out, _ = _run(capsys, health_code, "--keys", f"{jwks_server}/v1/codes/keys", "--now", str(NOW))
    assert status == 0
    assert out is not None
    assert out["valid"]
    status, out, err = _run(capsys, health_code, "--keys", f"{jwks_server}/missing", "--now", str(NOW))
    assert (status, out) == (2, None)
    assert "cannot read keys" in err
