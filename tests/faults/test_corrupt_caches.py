"""Damaged caches: the file is named, moved aside (kept byte for byte), and the run finishes as before.

DSPy's response cache (one SQLite shard file of many) and HELM's request cache (one SQLite file per
client) are damaged the ways a disk or a cut-short copy damages them; the rerun must reach the
same result as the first run, asking the server again only for what the damaged file held.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.faults.conftest import SERVER_SETTINGS
from tests.faults.procs import DEMO_DATA, KEY_ENV, MODEL, child_env, records, run_cli


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(max(path.stat().st_size, 4096)))


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _not_sqlite(path: Path) -> None:
    path.write_text("this is not a database\n", encoding="utf-8")


DAMAGE: dict[str, Callable[[Path], None]] = {"garbage": _garbage, "truncated": _truncated, "text": _not_sqlite}


def _optimize(api_base: str, out: Path, *extra: str) -> list[str]:
    return ["optimize", "--scenario", "head_qa", "--model", MODEL, "--api-base", api_base, "--api-key-env", KEY_ENV,
            "--optimizer", "BootstrapFewShot", "--max-bootstrapped-demos", "1", "--max-labeled-demos", "1",
            "--data-dir", str(DEMO_DATA), "--limit", "8", "--output-dir", str(out), *extra]


def _evaluate(api_base: str, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--scenario", "head_qa", "--model", MODEL, "--api-base", api_base, "--api-key-env", KEY_ENV,
            "--methods", "baseline,ZeroShotCoT", "--data-dir", str(DEMO_DATA), "--max-eval-instances", "8",
            "--output-dir", str(out), *extra]


def _fullest(paths: list[Path]) -> Path:
    """The cache file holding the most entries (so the damage costs something), :func:`_settled`."""
    def rows(path: Path) -> int:
        with sqlite3.connect(path) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return sum(db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables)

    return _settled(max(paths, key=rows))


def _settled(path: Path) -> Path:
    """``path`` with a write-ahead log its writer left folded into the file itself."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return path


def _moved_aside(output: str, log: Path, damaged: Path, content: bytes) -> None:
    assert "Traceback" not in output
    assert "WARNING" in output and "moved it aside" in " ".join(output.split()), output[-3000:]
    warnings = [line for line in log.read_text(encoding="utf-8").splitlines() if "moved it aside" in line]
    assert len(warnings) == 1 and str(damaged) in warnings[0], warnings  # the warning names the file
    (kept,) = damaged.parent.glob(f"{damaged.name}.damaged-*[!lm]")  # (not its -wal / -shm companions)
    assert kept.read_bytes() == content  # nothing lost: the damaged file is kept as it was


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_dspy_cache_shard_is_moved_aside_and_optimize_writes_the_same_agent(damage: str,
                                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = child_env(tmp_path / "cache")
    with FakeOpenAIServer(**SERVER_SETTINGS) as server:  # type: ignore[arg-type]
        code, output = run_cli(_optimize(server.api_base, out), tmp_path / "first.log", env)
        assert code == 0, output[-3000:]
        first_calls = server.completions
        (agent,) = [p for p in (out / "agents").rglob("*.json") if not p.name.endswith(".meta.json")]
        written = agent.read_bytes()
        shard = _fullest(sorted((out / "cache" / "dspy").rglob("cache.db")))  # (a log would mask the damage)
        DAMAGE[damage](shard)
        content = shard.read_bytes()
        code, output = run_cli(_optimize(server.api_base, out, "--force"), tmp_path / "second.log", env)
        second_calls = server.completions - first_calls
    assert code == 0, output[-3000:]
    _moved_aside(output, out / "logs" / "helm-optimizer.log", shard, content)
    assert agent.read_bytes() == written
    assert 0 < second_calls < first_calls  # only what the damaged shard held was asked again


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_helm_request_cache_is_moved_aside_and_evaluate_scores_the_same(damage: str,
                                                                                tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = child_env(tmp_path / "cache")
    with FakeOpenAIServer(**SERVER_SETTINGS) as server:  # type: ignore[arg-type]
        code, output = run_cli(_evaluate(server.api_base, out), tmp_path / "first.log", env)
        assert code == 0, output[-3000:]
        means = {r["method"]: r["mean"] for r in records(out)}
        first_calls = server.completions
        (cache,) = sorted((out / "helm" / "prod_env" / "cache").glob("*.sqlite"))
        DAMAGE[damage](_settled(cache))
        content = cache.read_bytes()
        code, output = run_cli(_evaluate(server.api_base, out, "--force"), tmp_path / "second.log", env,
                               timeout=120)  # HELM used to stall for minutes on such a file
        second_calls = server.completions - first_calls
    assert code == 0, output[-3000:]
    _moved_aside(output, out / "logs" / "helm-optimizer.log", cache, content)
    assert {r["method"]: r["mean"] for r in records(out)} == means
    assert second_calls == first_calls  # the damaged file held every request: all asked again, once


def test_a_shard_that_fails_while_the_run_reads_it_is_moved_aside_and_read_as_a_miss(tmp_path: Path,
                                                                                     caplog: pytest.LogCaptureFixture,
                                                                                     ) -> None:
    import dspy

    from helm_optimizer.lm_cache import configure_response_cache

    configure_response_cache(tmp_path)
    cache = dspy.cache
    try:
        cache.put({"question": 1}, {"answer": 1})
        cache.reset_memory_cache()
        shard = _fullest(sorted(tmp_path.rglob("cache.db")))
        opened = cache.disk_cache

        class Failing:
            """The shard fails under the open cache (as a disk error would), and the file is damaged."""

            def get(self, key: str, *args: object, **kwargs: object) -> object:
                raise sqlite3.DatabaseError("database disk image is malformed")

        cache.disk_cache = Failing()
        shard.write_bytes(os.urandom(4096))
        assert cache.get({"question": 1}) is None  # a miss, not a crash
        assert "moved it aside" in caplog.text and str(shard) in caplog.text
        assert list(shard.parent.glob("cache.db.damaged-*")) and cache.disk_cache is not opened
        cache.put({"question": 2}, {"answer": 2})  # the fresh shard takes new answers
        cache.reset_memory_cache()
        assert cache.get({"question": 2}) == {"answer": 2}
    finally:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)


def test_an_unmovable_damaged_cache_stops_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helm_optimizer import _io
    from helm_optimizer.errors import HelmOptimizerError
    from helm_optimizer.lm_cache import configure_response_cache

    shard = tmp_path / "000" / "cache.db"
    shard.parent.mkdir()
    shard.write_text("not a database\n", encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(_io.os, "replace", refuse)
    with pytest.raises(HelmOptimizerError) as info:
        configure_response_cache(tmp_path)
    assert str(shard) in str(info.value) and "permission denied" in str(info.value)
    assert "\n" not in str(info.value)
    assert json.dumps(str(info.value))  # plain text, one line
