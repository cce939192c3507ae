"""External programs some tests drive for real (Node for openid-client, wrk for the bench).

The README's test command must pass on a fresh machine with only Python and pip, so there a
missing program skips its tests, saying which; CI (``CI=true``, where ``.ci/run`` installs
them) never skips them: a missing program fails the test.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["require_programs"]


def require_programs(*names: str, why: str) -> None:
    """Fail (in CI) or skip (elsewhere) unless every program in ``names`` is on the PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed: {why}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)
