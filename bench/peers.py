"""``python -m bench --peers``: node-oidc-provider and django-oauth-toolkit measured right before
OneCity, in the same window on the same machine.

The peers' harness lives outside this repository (``../shared/peers``, its README says how it
loads each peer exactly as this bench loads OneCity). Its ``run_all.sh`` prints its progress
and, near the end, ``# results: <file>``: one JSON line per measured scenario, labelled
``"<server> <scenario>"`` (e.g. ``oidc-provider[redis] client_credentials``). Those lines are
read here into :class:`PeerResult` rows, which :func:`bench.report.render_run` puts in one
table with OneCity's own results.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec

__all__ = [
    "DEFAULT_PEERS",
    "DEFAULT_SCRIPT",
    "PeerError",
    "PeerResult",
    "parse_results",
    "read_peer_results",
    "results_path",
    "run_peers",
]

#: ``run_all.sh``, relative to the repository root as the issue names it.
DEFAULT_SCRIPT = Path(__file__).resolve().parents[1] / ".." / "shared" / "peers" / "run_all.sh"
#: The peers compared with (node-oidc-provider on Redis, django-oauth-toolkit).
DEFAULT_PEERS = ("oidc-redis", "dot")
_RESULTS_LINE = re.compile(r"^# results: (\S+)\s*$", re.MULTILINE)


class PeerError(RuntimeError):
    """The peers' harness failed or printed no results file."""


class PeerResult(msgspec.Struct, frozen=True):
    """One scenario of one peer: a line of the harness's results file (other fields ignored)."""

    label: str
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    ok_2xx: int
    non_2xx: int
    socket_errors: int
    wrong_bodies: int
    reused_items: int
    cpu_cores: dict[str, float]
    server_cpu_ms_per_request: float | None = None
    wrk: str = ""

    @property
    def server(self) -> str:
        """The peer, e.g. ``oidc-provider[redis]``."""
        return self.label.rpartition(" ")[0]

    @property
    def scenario(self) -> str:
        """The scenario, named as OneCity's (``trivial``, ``client_credentials``, ``refresh``)."""
        return self.label.rpartition(" ")[2]

    @property
    def errors(self) -> int:
        """Non-2xx answers, socket errors and wrong bodies."""
        return self.non_2xx + self.socket_errors + self.wrong_bodies


def parse_results(lines: Iterable[str]) -> list[PeerResult]:
    """The harness's JSON lines (blank lines skipped), in the order they were measured.

    Raises:
        PeerError: When a line is not a result.
    """
    decoder = msgspec.json.Decoder(PeerResult)
    results = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            results.append(decoder.decode(line))
        except msgspec.DecodeError as exc:
            raise PeerError(f"line {number} of the peers' results is not a result: {exc}") from None
    return results


def results_path(output: str) -> Path:
    """The results file ``run_all.sh`` named in ``output`` (its last ``# results:`` line).

    Raises:
        PeerError: When the output names none.
    """
    found = _RESULTS_LINE.findall(output)
    if not found:
        raise PeerError("the peers' harness printed no '# results: <file>' line")
    return Path(found[-1])


def read_peer_results(path: Path) -> list[PeerResult]:
    """The results ``run_all.sh`` wrote to ``path`` earlier (its ``# results:`` file).

    Raises:
        PeerError: When the file cannot be read or holds something other than results.
    """
    try:
        return parse_results(path.read_text().splitlines())
    except OSError as exc:
        raise PeerError(f"cannot read the peers' results {path}: {exc}") from None


def run_peers(script: Path = DEFAULT_SCRIPT, peers: Sequence[str] = DEFAULT_PEERS) -> list[PeerResult]:
    """Run ``script`` (``run_all.sh``) for ``peers``, echoing its output to stderr; its results.

    About 15 minutes of the whole machine: setup, each peer's load and its refresh pools.

    Raises:
        PeerError: When the script is missing, fails, or names no results file.
    """
    if not script.is_file():
        raise PeerError(f"no peers' harness at {script} (see --peers-script)")
    # Line by line to stderr as it runs (progress), and kept to find the results file.
    with subprocess.Popen([str(script), *peers], stdout=subprocess.PIPE, text=True, bufsize=1) as process:
        assert process.stdout is not None
        output = []
        for line in process.stdout:
            sys.stderr.write(line)
            output.append(line)
        code = process.wait()
    if code != 0:
        raise PeerError(f"{script} {' '.join(peers)} exited with {code}")
    return read_peer_results(results_path("".join(output)))
