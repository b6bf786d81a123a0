"""The one registry pattern: decorator registration, duplicates, hints, entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helm_optimizer.errors import PluginError, UnknownNameError
from helm_optimizer.registry import Registry


def test_register_and_get() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("Alpha")
    class Alpha:
        pass

    assert reg.get("Alpha") is Alpha
    assert "Alpha" in reg
    assert reg.names() == ["Alpha"]


def test_duplicate_names_both_origins() -> None:
    reg: Registry[object] = Registry("widget")
    reg.add("x", object(), origin="pkg_a")
    with pytest.raises(PluginError) as info:
        reg.add("x", object(), origin="pkg_b")
    assert "pkg_a" in str(info.value) and "pkg_b" in str(info.value)


def test_unknown_name_suggests_close_match_and_listing() -> None:
    reg: Registry[object] = Registry("optimizer", list_command="helm-optimizer list optimizers")
    reg.add("MIPROv2", object())
    with pytest.raises(UnknownNameError) as info:
        reg.get("miprov2")
    message = str(info.value)
    assert "Did you mean 'MIPROv2'" in message
    assert "helm-optimizer list optimizers" in message
    assert not message.startswith("'")  # LookupError would quote it


def test_entry_points_are_lazy_and_failures_name_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "good_thing.py").write_text("VALUE = 41 + 1\n")
    (tmp_path / "bad_thing.py").write_text("raise RuntimeError('boom')\n")
    dist = tmp_path / "things-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: things\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hopt_test_group]\ngood = good_thing:VALUE\nbad = bad_thing:VALUE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[int] = Registry("thing", group="hopt_test_group")
    assert reg.names() == ["bad", "good"]
    assert "good_thing" not in sys.modules  # nothing imported until used
    assert reg.get("good") == 42
    with pytest.raises(PluginError) as info:
        reg.get("bad")
    assert "bad_thing:VALUE" in str(info.value) and "boom" in str(info.value)


def test_frozen_registry_refuses_new_names() -> None:
    reg: Registry[object] = Registry("widget")
    reg.freeze()
    with pytest.raises(PluginError):
        reg.add("late", object())
