"""``core.lazy``: a package's public names import their modules on first access, once."""

from __future__ import annotations

from typing import Any

import pytest

from core.lazy import lazy_exports, sources_of


def test_a_name_imports_its_module_on_first_access_and_is_kept() -> None:
    namespace: dict[str, Any] = {}
    hook = lazy_exports("pkg", sources_of({"core.levels": ("level_rank", "LEVELS")}), namespace)
    from core.levels import level_rank

    assert hook("level_rank") is level_rank
    assert namespace == {"level_rank": level_rank}  # later accesses never reach the hook


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    hook = lazy_exports("pkg", {}, {})
    with pytest.raises(AttributeError, match=r"^module 'pkg' has no attribute 'missing'$"):
        hook("missing")


def test_core_resolves_a_public_name_to_the_module_that_defines_it() -> None:
    import core

    assert core.Repository.__module__ == "core.db"
    assert "Repository" in vars(core)
