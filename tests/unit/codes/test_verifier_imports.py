"""The copyable offline verifier stays light: partners import it into scanners and gates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# A clean interpreter: no metrics directory another test of this process may have pointed at.
_ENV = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}

_PROBE = """
import json, sys
before = set(sys.modules)
import codes.verifier
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _modules_loaded_by(probe: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, env=_ENV)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_importing_the_verifier_loads_only_the_standard_library_and_cryptography() -> None:
    loaded = _modules_loaded_by(_PROBE)
    third_party = {name.split(".")[0] for name in loaded} - set(sys.stdlib_module_names)
    assert third_party <= {
        "codes",
        "cryptography",
        "_cffi_backend",
        "_openssl",
    }  # the last two are cryptography's, sorted(third_party)
    assert len(loaded) <= 60, loaded


def test_the_package_still_offers_its_public_names_on_first_use() -> None:
    probe = (
        "import sys, codes; assert 'litestar' not in sys.modules; "
        "from codes import CodesService, verify_code; assert 'litestar' in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, env=_ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
