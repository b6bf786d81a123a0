"""Bad input of every kind: one error line that names the fix, exit code 2, earlier results untouched.

Each case runs ``helm-optimizer`` in process. Cases that take an output directory point it at one
holding an agent, its metadata and an evaluation record from an "earlier run"; those files must
be byte-identical afterwards. No case reaches a model: every error is found before any LM call.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bad_input.conftest import AGENT_FIXTURES, CliRunner, Earlier
from tests.conftest import FIXTURE_DATA
from tests.faults.procs import DEMO_DATA, KEY_ENV, MODEL, SENTINEL_KEY, tiny_sweep

DEAD_API = "http://127.0.0.1:9/v1"  # nothing listens there; no case may get as far as calling it


@dataclass
class Ctx:
    tmp: Path
    out: Path

    def __post_init__(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    def sweep(self, name: str = "sweep.yaml", **changes: Any) -> str:
        data = tiny_sweep(DEAD_API, self.out)
        for key, value in changes.items():
            if value is _DROP:
                data.pop(key)
            else:
                data[key] = value
        return self.write(name, yaml.safe_dump(data, sort_keys=False))

    def optimize(self, *extra: str, scenario: str = "head_qa", data_dir: str | None = None) -> list[str]:
        return ["optimize", "--scenario", scenario, "--model", MODEL, "--api-base", DEAD_API, "--optimizer",
                "LabeledFewShot", "--data-dir", data_dir or str(DEMO_DATA), "--output-dir", str(self.out), *extra]

    def medbullets(self, break_it: Callable[[Path], None]) -> str:
        data = self.tmp / "data"
        shutil.copytree(FIXTURE_DATA / "medbullets", data / "medbullets")
        break_it(data / "medbullets" / "medbullets_op5.csv")
        return str(data)

    def agent(self, content: str | bytes) -> list[str]:
        return ["agents", "show", self.write("agent.json", content)]


_DROP = object()


def _rename_column(path: Path) -> None:
    header, rest = path.read_text(encoding="utf-8").split("\n", 1)
    path.write_text(header.replace("answer_idx", "renamed") + "\n" + rest, encoding="utf-8")


def _latin1(path: Path) -> None:
    path.write_bytes(path.read_text(encoding="utf-8").replace("a", "é", 1).encode("latin-1"))


def _yaml_with_unknown_key(ctx: Ctx) -> str:
    data = tiny_sweep(DEAD_API, ctx.out)
    data["optimisers"] = data.pop("optimizers")
    return ctx.write("typo.yaml", yaml.safe_dump(data, sort_keys=False))


def _line_of(path: str, text: str) -> int:
    return next(i for i, line in enumerate(Path(path).read_text().splitlines(), 1) if line.startswith(text))


# id -> (argv builder, fragments the one error line must contain)
CASES: dict[str, tuple[Callable[[Ctx], list[str]], tuple[str, ...]]] = {
    # --- command line -------------------------------------------------------------------------
    "unknown subcommand": (lambda c: ["frobnicate"], ("No such command 'frobnicate'", "optimize, evaluate",
                                                      "--help")),
    "misspelt subcommand": (lambda c: ["optimze"], ("Did you mean 'optimize'",)),
    "unknown option": (lambda c: c.optimize("--frob"), ("No such option: --frob", "optimize --help")),
    "option value not an int": (lambda c: c.optimize("--seed", "abc"), ("'--seed'", "integer")),
    "--limit 1": (lambda c: c.optimize("--limit", "1"), ("'--limit'", "2")),
    "--num-threads 0": (lambda c: c.optimize("--num-threads", "0"), ("'--num-threads'", "1")),
    "missing required option": (lambda c: ["optimize", "--model", MODEL], ("Missing option '--scenario'",)),
    "unknown optimizer": (lambda c: c.optimize("--optimizer", "MiproV2"),
                          ("Unknown optimizer 'MiproV2'", "Did you mean 'MIPROv2'", "list optimizers")),
    "--auto bogus": (lambda c: c.optimize("--auto", "bogus"), ("auto", "'light', 'medium' or 'heavy'")),
    "--program bogus": (lambda c: c.optimize("--program", "bogus"), ("program", "'predict' or 'cot'")),
    "--on-overlap bogus": (lambda c: c.optimize("--on-overlap", "bogus"), ("on_overlap", "'refuse' or 'drop'")),
    "--temperature 5": (lambda c: c.optimize("--temperature", "5"), ("temperature", "2")),
    "--option not KEY=VALUE": (lambda c: c.optimize("--option", "novalue"), ("--option expects KEY=VALUE",)),
    "--option the optimizer lacks": (lambda c: c.optimize("--option", "num_trials=3"),
                                     ("does not take option(s) num_trials",)),
    "model name with a space": (lambda c: ["evaluate", "--scenario", "head_qa", "--model", "gpt 4",
                                           "--output-dir", str(c.out)], ("Invalid model: model name 'gpt 4'",
                                                                         "white space")),
    "unknown method": (lambda c: ["evaluate", "--scenario", "head_qa", "--model", MODEL, "--api-base", DEAD_API,
                                  "--methods", "baseline,MiproV2", "--output-dir", str(c.out)],
                       ("Unknown method 'MiproV2'", "Did you mean 'MIPROv2'", "list methods")),
    "no methods": (lambda c: ["evaluate", "--scenario", "head_qa", "--model", MODEL, "--methods", ",",
                              "--output-dir", str(c.out)], ("No methods to evaluate",)),
    "unknown list": (lambda c: ["list", "bogus"], ("Unknown list 'bogus'", "optimizers, models or methods")),
    "unknown executor": (lambda c: ["sweep", c.sweep(), "--executor", "slurm"],
                         ("Unknown executor 'slurm'", "local or ray")),
    "report of a missing dir": (lambda c: ["report", str(c.tmp / "nope")], ("is not a directory",)),
    # --- sweep config files -----------------------------------------------------------------
    "config: missing file": (lambda c: ["validate", str(c.tmp / "nope.yaml")], ("does not exist",)),
    "config: a directory": (lambda c: ["validate", str(c.tmp)], ("is a directory",)),
    "config: unknown key (file:line)": (lambda c: ["validate", _yaml_with_unknown_key(c)],
                                        ("typo.yaml:", "unknown key 'optimisers'", "Did you mean 'optimizers'",
                                         "Known keys here:")),
    "config: unknown scenario": (lambda c: ["validate", c.sweep(scenarios=["head_qaa"])],
                                 ("Unknown scenario (HELM run entry) 'head_qaa'", "Did you mean 'head_qa'",
                                  "scenarios list")),
    "config: malformed run entry": (lambda c: ["validate", c.sweep(scenarios=["head_qa:language"])],
                                    ("sweep.yaml: scenarios:", "Malformed run entry 'head_qa:language'",
                                     "key=value")),
    "config: unknown optimizer": (lambda c: ["validate", c.sweep(optimizers=["LabeledFewShot", "MiproV2"])],
                                  ("optimizers:", "Did you mean 'MIPROv2'")),
    "config: key variable unset": (lambda c: ["validate", c.sweep(models=[{
        "model": MODEL, "api_base": DEAD_API, "api_key_env": "HOPT_UNSET_KEY_VARIABLE"}])],
        ("HOPT_UNSET_KEY_VARIABLE", "is not set", "export HOPT_UNSET_KEY_VARIABLE=")),
    "config: wrong type": (lambda c: ["validate", c.sweep(num_threads="many")],
                           ("sweep.yaml:", "num_threads", "integer")),
    "config: not YAML": (lambda c: ["validate", c.write("bad.yaml", "scenarios: [head_qa\noptimizers: x\n")],
                         ("bad.yaml:2:", "not valid YAML", "fix the syntax")),
    "config: not TOML": (lambda c: ["validate", c.write("bad.toml", "scenarios = [\n")], ("not valid TOML",)),
    "config: empty": (lambda c: ["validate", c.write("empty.yaml", "\n\n")], ("is empty",)),
    "config: a list, not a mapping": (lambda c: ["validate", c.write("list.yaml", "- head_qa\n")],
                                      ("must hold a mapping",)),
    "config: not UTF-8": (lambda c: ["validate", c.write("latin1.yaml", "suite: caf\xe9\n".encode("latin-1"))],
                          ("not UTF-8", "save it as UTF-8")),
    "config: wrong suffix": (lambda c: ["validate", c.write("sweep.json", "{}")], ("must end in .yaml",)),
    "config: missing models": (lambda c: ["validate", c.sweep(models=_DROP)], ("missing required key 'models'",)),
    "config: optimizer listed twice": (lambda c: ["validate", c.sweep(optimizers=["LabeledFewShot"] * 2,
                                                                      optimizer_options={})],
                                       ("optimizers", "lists a name twice")),
    "config: api_key literal": (lambda c: ["validate", c.sweep(models=[{
        "model": MODEL, "api_base": DEAD_API, "api_key": "sk-literal-LEAKED-1234"}])],
        ("must not hold an API key", "api_key_env")),
    "config: data_dir missing": (lambda c: ["validate", c.sweep(data_dir=str(c.tmp / "no-data"))],
                                 ("data_dir", "is not a directory")),
    # --- plugins ------------------------------------------------------------------------------
    "plugin: no such file": (lambda c: ["validate", c.sweep(plugins=[str(c.tmp / "missing_plugin.py")])],
                             ("missing_plugin.py", "is not a file")),
    "plugin: raises on import": (lambda c: c.optimize("--plugins", c.write(
        "hopt_bad_plugin_raises.py", "raise RuntimeError('boom at import')\n")),
        ("hopt_bad_plugin_raises.py", "failed to import", "RuntimeError: boom at import")),
    "plugin: syntax error": (lambda c: ["scenarios", "show", "head_qa", "--plugins", c.write(
        "hopt_bad_plugin_syntax.py", "def broken(:\n")], ("hopt_bad_plugin_syntax.py", "SyntaxError")),
    "plugin: unknown module": (lambda c: ["scenarios", "show", "head_qa", "--plugins", "hopt_no_such_module"],
                               ("hopt_no_such_module", "PYTHONPATH")),
    "run entry: unknown argument": (lambda c: c.optimize(scenario="head_qa:bogus=1"),
                                    ("head_qa:bogus=1", "unexpected keyword argument 'bogus'")),
    "run entry: unknown scenario": (lambda c: ["scenarios", "show", "head_qaa"], ("Did you mean 'head_qa'",)),
    # --- data files (the medical loaders' errors, through the CLI) ---------------------------
    "data: missing column": (lambda c: c.optimize(scenario="medbullets", data_dir=c.medbullets(_rename_column)),
                             ("medbullets_op5.csv", "'answer_idx'")),
    "data: empty file": (lambda c: c.optimize(scenario="medbullets", data_dir=c.medbullets(
        lambda p: p.write_text(""))), ("medbullets_op5.csv", "is empty")),
    "data: not UTF-8": (lambda c: c.optimize(scenario="medbullets", data_dir=c.medbullets(_latin1)),
                        ("medbullets_op5.csv", "not UTF-8")),
    "data: missing directory": (lambda c: c.optimize(scenario="medbullets", data_dir=str(c.tmp / "nodata")),
                                ("nodata",)),
    # --- agent files (agents show) -----------------------------------------------------------
    "agent: missing": (lambda c: ["agents", "show", str(c.tmp / "none.json")], ("does not exist",)),
    "agent: truncated": (lambda c: c.agent((AGENT_FIXTURES / "reference_dspy_3.0.3_cot.json").read_text()[:200]),
                         ("not valid JSON", "line 9", "truncated", "re-run the optimization")),
    "agent: wrong keys": (lambda c: c.agent('{"module": {}, "weights": []}'), ("found keys: module, weights",)),
    "agent: a JSON list": (lambda c: c.agent("[1, 2]"), ("JSON list",)),
    "agent: not UTF-8": (lambda c: c.agent(b'{"predict": {"demos": ["\xff\xfe"]}}'), ("not UTF-8",)),
    "agent: demos not a list": (lambda c: c.agent('{"predict": {"demos": "x", "signature": {"fields": []}}}'),
                                ("'demos' must be a list",)),
    "agent: no signature": (lambda c: c.agent('{"predict": {"demos": []}}'), ("no 'signature'",)),
    "agent: a directory": (lambda c: ["agents", "show", str(c.tmp)], ("is a directory", "agents list")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_exit_2(case: str, cli: CliRunner, earlier: Earlier, tmp_path: Path) -> None:
    build, fragments = CASES[case]
    argv = build(Ctx(tmp=tmp_path / "case", out=earlier.root))
    result = cli(argv)
    assert result.code == 2, (result.code, result.err)
    line = result.error_line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert SENTINEL_KEY not in result.err + result.out
    assert "sk-literal-LEAKED-1234" not in result.err + result.out  # a key in a config is never echoed
    earlier.assert_intact()


def test_unknown_key_error_names_the_right_line(cli: CliRunner, tmp_path: Path, earlier: Earlier) -> None:
    path = _yaml_with_unknown_key(Ctx(tmp=tmp_path, out=earlier.root))
    line = cli(["validate", path]).error_line
    assert f"{path}:{_line_of(path, 'optimisers:')}:" in line


@pytest.mark.parametrize("name", ["reference_dspy_2.5_cot.json", "reference_dspy_2.6.5_cot.json",
                                  "reference_dspy_3.0.3_cot.json", "reference_dspy_3.0.3_predict.json"])
def test_agents_of_other_dspy_versions_show(name: str, cli: CliRunner) -> None:
    result = cli(["agents", "show", str(AGENT_FIXTURES / name)])
    assert result.code == 0, result.err
    assert "Answer the arithmetic question" in result.out or "instruction" in result.out
    assert "no metadata file" in result.out


def test_agent_with_metadata_of_another_agent_is_not_trusted(tmp_path: Path) -> None:
    """An agent replaced without its metadata (interrupted --force) is detected, not reused."""
    from helm_optimizer.agents.store import meta_matches_agent
    from helm_optimizer.records import AgentData, AgentMeta, AgentScores

    def meta(digest: str | None) -> AgentMeta:
        return AgentMeta(
            scenario="s", run_entry="s", model="m", optimizer="LabeledFewShot", seed=0, config={},
            config_fingerprint="c", created_at="t", agent_sha256=digest, scores=AgentScores(metric="em"),
            data=AgentData(fingerprint="d", train_size=1, val_size=1, strategy="s", main_metric="em", eval_size=1,
                           eval_ids_fingerprint="e", test_size=1))

    agent = tmp_path / "LabeledFewShot.json"
    shutil.copy(AGENT_FIXTURES / "reference_dspy_3.0.3_cot.json", agent)
    assert meta_matches_agent(agent, meta(None))  # metadata from before hashes were recorded
    import hashlib

    digest = hashlib.sha256(agent.read_bytes()).hexdigest()
    assert meta_matches_agent(agent, meta(digest))
    agent.write_text(json.dumps({"predict": {"demos": [], "signature": {"fields": []}}}))
    assert not meta_matches_agent(agent, meta(digest))


def test_key_env_must_be_set_for_optimize(cli: CliRunner, earlier: Earlier, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    ctx = Ctx(tmp=tmp_path, out=earlier.root)
    result = cli(ctx.optimize("--api-key-env", KEY_ENV))
    assert result.code == 2
    assert f"export {KEY_ENV}=" in result.error_line
    earlier.assert_intact()
