"""What a user sees during a sweep: in a real terminal (tmux) and piped.

A sweep on the fake server (with some unparseable answers, so DSPy logs parse errors, and a
bootstrapping optimizer, so DSPy prints "Bootstrapped ...") runs as ``helm-optimizer sweep``; the
test reads the screen back with ``tmux capture-pane``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_optimizer.serving.fake import FakeOpenAIServer, FakeServerConfig
from tests.conftest import REPO, demo_answer_key

pytestmark = pytest.mark.slow

DEMO_DATA = REPO / "src" / "helm_optimizer" / "data" / "demo"
ENTRY = Path(sys.executable).with_name("helm-optimizer")
METHODS = ("baseline", "ZeroShotCoT")
OPTIMIZERS = ("BootstrapFewShotWithRandomSearch", "LabeledFewShot")
ROW_END = re.compile(r"│\s*(done|failed|skipped)\s*│")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    config = FakeServerConfig(answers=demo_answer_key(), accuracy=0.6, demo_accuracy=0.8, seed=3, bad_output_rate=0.15,
                              bad_output_kinds=("overlong", "garbage"), overlong_chars=3000)
    with FakeOpenAIServer(config) as fake:
        yield fake


def _config(path: Path, api_base: str, output_dir: Path, **overrides: Any) -> Path:
    data: dict[str, Any] = {
        "output_dir": str(output_dir), "suite": "display", "seed": 0,
        "scenarios": [{"entry": "head_qa", "data_dir": str(DEMO_DATA)}],
        "optimizers": list(OPTIMIZERS),
        "models": [{"model": "openai/fake-display", "api_base": api_base}],
        "methods": list(METHODS), "max_bootstrapped_demos": 1, "max_labeled_demos": 1, "num_threads": 2,
        "limit": 8, "eval_limit": 6,
        "optimizer_options": {"BootstrapFewShotWithRandomSearch": {"num_candidate_programs": 1}},
        "summarize": True,
    }
    data.update(overrides)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _command(*args: str) -> list[str]:
    return [str(ENTRY), *args] if ENTRY.is_file() else [sys.executable, "-m", "helm_optimizer.cli.main", *args]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HELM_OPTIMIZER_CACHE_DIR": str(tmp_path / "cache"), "LITELLM_LOCAL_MODEL_COST_MAP": "true"}
    env.pop("TQDM_DISABLE", None)  # HELM's bars must stay off because of the display, not the test
    return env


def test_terminal_shows_a_clean_table_and_a_result_summary(server: FakeOpenAIServer, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (apt-get install tmux) for a real pseudo-terminal")
    config = _config(tmp_path / "sweep.yaml", server.api_base, tmp_path / "out")
    socket = tmp_path / "tmux.sock"
    script = tmp_path / "run.sh"
    env = _env(tmp_path)
    keep = ("PATH", "PYTHONPATH", "HOME", "HELM_OPTIMIZER_CACHE_DIR", "LITELLM_LOCAL_MODEL_COST_MAP")
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k in keep)
    script.write_text(
        "#!/bin/sh\n" + exports + "unset TQDM_DISABLE\n"
        f"{shlex.join(_command('sweep', str(config)))}\necho \"EXIT=$?\" > {shlex.quote(str(tmp_path / 'rc'))}\n"
        f"tmux -S {shlex.quote(str(socket))} wait-for -S sweep-done\nexec cat\n"
    )
    script.chmod(0o755)
    tmux = ["tmux", "-S", str(socket)]
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-x", "230", "-y", "70", str(script)],
                   check=True, env=env, timeout=30)
    try:
        subprocess.run([*tmux, "wait-for", "sweep-done"], check=True, timeout=540)
        screen = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-", "-E", "-"], check=True,
                                capture_output=True, text=True, timeout=30).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, timeout=30)
    (tmp_path / "screen.txt").write_text(screen)
    assert (tmp_path / "rc").read_text().strip() == "EXIT=0", screen[-3000:]
    assert "it/s]" not in screen and "Bootstrapped" not in screen, screen
    # the final table: every cell, summarize and report row ended
    labels = [f"optimize head_qa · openai/fake-display · {o}" for o in OPTIMIZERS]
    labels += ["evaluate head_qa · openai/fake-display", "helm-summarize", "report"]
    table = screen[:screen.index("Results")]
    for label in labels:
        rows = [line for line in table.splitlines() if label in line and line.lstrip().startswith("│")]
        assert rows, (label, screen)
        assert ROW_END.search(rows[-1]), (label, rows[-1])
    assert re.search(r"val \d\.\d{3} → \d\.\d{3}", table)  # an optimize row's result
    assert re.search(r"exact_match: baseline \d\.\d{3}", table)  # the evaluate row's result
    assert "ETA" in table or "finished" in table
    # the exit summary: a table of every method, then the report path
    summary = screen[screen.index("Results"):]
    for method in (*METHODS, *OPTIMIZERS):
        assert re.search(rf"│ {method}\s*│", summary), (method, summary)
    assert "Δ vs baseline" in summary and "95% CI" in summary
    assert re.search(r"Report: \S*report\.html", summary)
    log = (tmp_path / "out" / "logs" / "helm-optimizer.log").read_text()
    assert "Bootstrapped" in log  # DSPy's print went to the log, not away


def test_piped_output_is_one_short_line_per_event(server: FakeOpenAIServer, tmp_path: Path) -> None:
    config = _config(tmp_path / "sweep.yaml", server.api_base, tmp_path / "out", summarize=False,
                     optimizers=["BootstrapFewShotWithRandomSearch"])
    done = subprocess.run(_command("sweep", str(config)), capture_output=True, text=True, timeout=540,
                          env=_env(tmp_path), check=False)
    (tmp_path / "stderr.txt").write_text(done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert lines
    assert max(len(line) for line in lines) <= 400, max(lines, key=len)
    assert "it/s]" not in done.stderr and "Bootstrapped" not in done.stderr + done.stdout
    ends = [line for line in lines if re.search(r"^\[\d+/\d+\] .*: (done|failed|skipped)\b", line)]
    assert len(ends) == 3, lines  # one optimize cell, one evaluate cell, the report
    assert any(": done" in line and "val " in line for line in ends)


def test_console_log_lines_are_short_and_point_at_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A library's multi-kilobyte error (DSPy's parse errors quote the whole answer): one line, once, plus a pointer."""
    import logging

    from helm_optimizer.cli._common import setup_logging

    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        log_path = setup_logging(tmp_path / "logs")
        dump = "Adapter failed to parse the LM response.\n" + "The answer is A and so on " * 400
        logging.getLogger("dspy.utils.parallelizer").error(dump)
        logging.getLogger("dspy.adapters").error("a second DSPy error")
        logging.getLogger("helm_optimizer.test").warning("our own warning, kept")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("ERROR: dspy: Adapter failed to parse the LM response.")
    assert f"(full text in {log_path})" in lines[0] and len(lines[0]) < 400
    assert "a second DSPy error" not in err
    assert lines[1] == "WARNING: our own warning, kept"
    assert dump.splitlines()[1] in log_path.read_text()  # whole in the log
