"""Fresh processes, as a user starts them: HELM's and our console scripts with a clean environment.

A fresh process has no ``HELM_OPTIMIZER_*`` variable, its own ``HOME`` and caches, this checkout's
package on ``PYTHONPATH`` (as an installed package would be) plus any plugin directories, and
NLTK's offline data path (docs/plugins.md: ``helm-summarize`` loads no plugin, so nothing else
keeps ``nltk.download`` off the network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import helm_optimizer
from helm_optimizer.serving._procs import free_port

SRC = Path(helm_optimizer.__file__).resolve().parents[1]
NLTK_STUB = SRC / "helm_optimizer" / "data" / "nltk"
BIN = Path(sys.executable).parent


def fresh_env(home: Path, *, pythonpath: Sequence[Path] = (), extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_OPTIMIZER_") and k != "PYTHONPATH"}
    home.mkdir(parents=True, exist_ok=True)
    env.update({"HOME": str(home), "PYTHONPATH": os.pathsep.join(str(p) for p in (SRC, *pythonpath)),
                "NLTK_DATA": str(NLTK_STUB), "LITELLM_LOCAL_MODEL_COST_MAP": "true", "HF_HUB_OFFLINE": "1",
                "TQDM_DISABLE": "1"})
    env.update(extra or {})
    return env


def run_script(name: str, args: Sequence[str], *, env: dict[str, str], cwd: Path,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a console script of this venv (``helm-optimizer``, ``helm-summarize``...); fail with its output."""
    proc = subprocess.run([str(BIN / name), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{name} {' '.join(args[:4])}... exited {proc.returncode}:\n" \
                                 f"{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def _get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def serve_and_fetch(output_path: Path, suite: str, files: Sequence[str], *, env: dict[str, str], cwd: Path,
                    timeout: float = 90) -> dict[str, Any]:
    """Start ``helm-server`` for ``suite``, GET its index and ``files`` of the suite, stop it.

    Returns the decoded JSON of each file. Waits on the server answering, never on a fixed sleep.
    """
    port = free_port()
    log = cwd / f"helm-server-{port}.log"
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen([str(BIN / "helm-server"), "--output-path", str(output_path), "--suite", suite,
                                   "--port", str(port)], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        index = None
        while index is None:
            assert server.poll() is None, f"helm-server exited {server.returncode}: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"helm-server did not answer in {timeout}s: {log.read_text()[-3000:]}"
            index = _get(f"http://127.0.0.1:{port}/")
            if index is None:
                time.sleep(0.2)
        status, body = index
        assert status == 200 and b"<html" in body.lower(), body[:200]
        config = _get(f"http://127.0.0.1:{port}/config.js")
        assert config is not None and f'window.SUITE = "{suite}"'.encode() in config[1], config
        fetched = {}
        for name in files:
            got = _get(f"http://127.0.0.1:{port}/benchmark_output/runs/{suite}/{name}")
            assert got is not None and got[0] == 200, f"GET {name}: {got}"
            fetched[name] = json.loads(got[1])
        return fetched
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
