"""The offline verifier stays light: ``import codes.verifier`` loads the standard library and
``cryptography`` only, a bounded number of modules, never the server stack.

Partners copy ``codes/verifier.py`` into scanners and ``onecity verify`` imports it, so what it
pulls in is measured the way the issue states it: ``python -X importtime`` in a fresh
interpreter, minus what the interpreter's start-up (``-c pass``) already loads.
"""

from __future__ import annotations

import subprocess
import sys

#: The ceiling on modules ``import codes.verifier`` adds to interpreter start-up.
MAX_ADDED_MODULES = 60
#: The server stack; any of these in the verifier's imports means the copyable file is broken.
FORBIDDEN = ("litestar", "asyncpg", "redis", "msgspec")


def _imported_modules(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter and return the modules ``-X importtime`` lists.

    Args:
        code: The ``-c`` program.

    Returns:
        The fully qualified module names, in import order.
    """
    finished = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules = []
    for line in finished.stderr.splitlines():
        if not line.startswith("import time:") or line.rstrip().endswith("| package"):
            continue
        modules.append(line.rsplit("|", 1)[1].strip())
    return modules


def _added_by_verifier() -> set[str]:
    return set(_imported_modules("import codes.verifier")) - set(_imported_modules("pass"))


def test_verifier_adds_at_most_60_modules_to_start_up() -> None:
    added = _added_by_verifier()
    assert "codes.verifier" in added
    assert len(added) <= MAX_ADDED_MODULES, sorted(added)


def test_verifier_imports_none_of_the_server_stack() -> None:
    added = _added_by_verifier()
    forbidden = sorted(m for m in added if m.split(".", 1)[0] in FORBIDDEN)
    assert forbidden == []
