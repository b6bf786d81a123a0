"""The ``helm-optimizer`` command itself: help, version, errors, listings, scenarios and agents."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helm_optimizer import __version__
from helm_optimizer.config import LMConfig, OptimizeConfig
from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.conftest import EXAMPLE_PLUGIN

ENTRY = Path(sys.executable).with_name("helm-optimizer")


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [str(ENTRY)] if ENTRY.is_file() else [sys.executable, "-m", "helm_optimizer.cli.main"]
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": ""}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_help_and_version() -> None:
    result = _cli("--help")
    assert result.returncode == 0, result.stderr
    for command in ("optimize", "evaluate", "sweep", "validate", "report", "list", "scenarios", "agents"):
        assert command in result.stdout
    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"helm-optimizer {__version__}"
    for bare in (_cli(), _cli("agents")):  # no arguments: the help, exit 0
        assert bare.returncode == 0 and bare.stdout.startswith("Usage: helm-optimizer"), bare


def test_help_imports_no_helm_dspy_or_torch() -> None:
    code = """
import sys
from helm_optimizer.cli.main import main
for argv in (["--help"], ["optimize", "--help"], ["sweep", "--help"], ["evaluate", "--help"],
             ["scenarios", "show", "--help"], ["agents", "show", "--help"], ["list", "--help"], ["--version"]):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 0, (argv, exc.code)
heavy = {"helm", "dspy", "torch", "litellm", "ray", "transformers", "openai", "numpy"}
print("HEAVY=" + ",".join(sorted(heavy & {m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": ""}, check=False)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr or result.stderr.rstrip().endswith("HEAVY="), result.stderr


def test_unknown_subcommand_is_one_line_and_exit_2() -> None:
    result = _cli("optimise")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: No such command 'optimise'.") and "Did you mean 'optimize'?" in lines[0]
    assert "helm-optimizer --help" in lines[0]


def test_list_optimizers_lists_the_registry() -> None:
    from helm_optimizer.optimizers import OPTIMIZERS

    result = _cli("list", "optimizers")
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert listed == OPTIMIZERS.names()
    assert {"MIPROv2", "BootstrapFewShot", "LabeledFewShot"} <= set(listed)


def test_scenarios_show_prints_the_exact_prompt_and_gold() -> None:
    result = _cli("scenarios", "show", "times_tables", "--plugins", str(EXAMPLE_PLUGIN))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "sample prompt (exactly what HELM sends)" in line)
    gold = next(i for i, line in enumerate(lines) if " gold answer " in line)
    prompt = "\n".join(lines[start + 1:gold])
    # HELM's generation adapter with the example plugin's AdapterSpec (its instructions, no input prefix,
    # the default "\n" input suffix, "Product: " with its trailing space stripped) around its first test
    # instance, "7 x 8 = ?".
    assert prompt == "Multiply the two numbers. Answer with the product only.\n7 x 8 = ?\nProduct:"
    assert lines[gold + 1].strip() == "56"
    assert "instances: test 2" in result.stdout


@pytest.fixture(scope="module")
def produced_agent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helm_optimizer.optimize import optimize

    out = tmp_path_factory.mktemp("agents-cli")
    with FakeOpenAIServer(accuracy=0.6, demo_accuracy=0.9) as server:
        config = OptimizeConfig(scenario="times_tables", optimizer="BootstrapFewShot", output_dir=out,
                                lm=LMConfig(model="openai/cli-model", api_base=server.api_base),
                                max_bootstrapped_demos=1, max_labeled_demos=2, num_threads=2, seed=7)
        (agent,) = optimize(config, plugins=(str(EXAMPLE_PLUGIN),)).agents
    return agent.path


def test_agents_list_shows_the_produced_agent(produced_agent: Path) -> None:
    out = produced_agent.parents[4]  # OUTPUT_DIR/agents/<scenario>/openai/cli-model/<optimizer>.json
    for target in (out, out / "agents"):
        result = _cli("agents", "list", str(target))
        assert result.returncode == 0, result.stderr
        rows = [line for line in result.stdout.splitlines() if "times_tables" in line]
        assert len(rows) == 1, result.stdout
        for cell in ("openai/cli-model", "BootstrapFewShot", str(produced_agent)):
            assert cell in rows[0]
        assert " 7 " in rows[0]  # the seed


def test_agents_show_prints_instruction_demos_and_provenance(produced_agent: Path) -> None:
    import json

    result = _cli("agents", "show", str(produced_agent))
    assert result.returncode == 0, result.stderr
    assert "instruction" in result.stdout and "demos" in result.stdout
    assert " x " in result.stdout  # a demo's input, such as "2 x 3 = ?"
    start = result.stdout.index("{", result.stdout.index("provenance"))
    provenance, _ = json.JSONDecoder().raw_decode(result.stdout[start:])  # the contamination line follows
    assert provenance["scenario"] == "times_tables" and provenance["optimizer"] == "BootstrapFewShot"
    assert provenance["model"] == "openai/cli-model" and provenance["seed"] == 7
    assert {"dspy", "crfm-helm", "helm-optimizer"} <= set(provenance["versions"])
    assert set(provenance["usage"]) >= {"lm_calls", "retries", "parse_failures", "failed_calls"}


def test_agents_list_of_an_empty_directory(tmp_path: Path) -> None:
    result = _cli("agents", "list", str(tmp_path))
    assert result.returncode == 0 and "No agents under" in result.stdout


def test_optimize_draws_one_progress_display_not_dspys_bars(tmp_path: Path) -> None:
    """BootstrapFewShot's tqdm bars run in worker threads; through the command they are off."""
    with FakeOpenAIServer() as server:
        result = _cli("optimize", "--scenario", "times_tables", "--plugins", str(EXAMPLE_PLUGIN),
                      "--optimizer", "BootstrapFewShot", "--model", "openai/fake-model", "--api-base",
                      server.api_base, "--output-dir", str(tmp_path / "out"), "--num-threads", "2", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "out" / "agents").rglob("BootstrapFewShot.json"))
    assert "it/s]" not in result.stderr + result.stdout
    assert "it]" not in result.stderr + result.stdout
