"""The ``onecity`` command as an operator types it: a new process, with no ``ONECITY_*`` set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["onecity_without_variables"]


def onecity_without_variables(cwd: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``onecity ARGV`` in ``cwd`` (so ``.onecity`` there is the data folder), no variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONECITY_")}
    return subprocess.run(
        [sys.executable, "-m", "bff.cli", *argv],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
