"""Property tests of every identity in :mod:`helm_optimizer.naming`.

Inputs are run entries whose argument values hold ``/ : = %``, spaces, unicode and 300-character
values (``,`` separates arguments in the run-entry syntax, so no value can hold it), and model
names such as ``ollama_chat/llama3:8b`` or ``hosted_vllm/org/model``. For every identity: paths
stay inside their root, every path component fits in a directory name (255 bytes), two different
inputs never share a name, and what a writer computes is what the reader finds.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from helm_optimizer.agents.store import list_agents
from helm_optimizer.errors import ConfigError
from helm_optimizer.naming import (
    ZERO_SHOT_METHODS,
    agent_deployment_name,
    agent_path,
    deployment_name,
    helm_run_name,
    method_slug,
    model_from_path,
    model_path,
    parse_run_entry,
    record_path,
    scenario_key,
)
from helm_optimizer.optimizers import OPTIMIZERS

MAX_COMPONENT = 255
ROOT = Path("/srv/out/agents")
PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters of argument values: the awkward ASCII ones, letters, and any printable unicode.
_value_chars = st.one_of(
    st.sampled_from(list("/:=% ._-~@+'\"")),
    st.characters(min_codepoint=0x30, max_codepoint=0x7A),
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=","),
)
_values = st.one_of(
    st.text(_value_chars, min_size=0, max_size=40),
    st.text(_value_chars, min_size=250, max_size=300),  # very long values
).map(str.strip)
_keys = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(lambda k: k not in ("model", "model_deployment"))
_entry_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,24}", fullmatch=True)
_args = st.dictionaries(_keys, _values, max_size=4)

_model_segments = st.one_of(
    st.sampled_from(["openai", "ollama_chat", "hosted_vllm", "org", "llama3:8b", "gpt-4o", "model", "..", ".x",
                     "Qwen2.5-7B-Instruct", "a%2Fb", "a b", "名前", "m@v1"]),
    # at most 20 characters: 240 bytes once percent-encoded, so never refused as too long
    st.text(_value_chars.filter(lambda c: c != "/"), min_size=1, max_size=20).filter(lambda s: s.strip() == s and s),
)
_models = st.one_of(
    st.sampled_from(["ollama_chat/llama3:8b", "hosted_vllm/org/model", "openai/gpt-4o", "local/smollm2",
                     "ollama_chat/llama3_8b", "ollama_chat_llama3/8b"]),
    st.lists(_model_segments, min_size=1, max_size=4).map("/".join),
)
_methods = st.sampled_from(sorted({*OPTIMIZERS.names(), *ZERO_SHOT_METHODS}))
_folds = st.one_of(st.none(), st.integers(min_value=0, max_value=12))


def _entry(name: str, args: dict[str, str]) -> str:
    return name + (":" + ",".join(f"{k}={v}" for k, v in args.items()) if args else "")


def _inside(root: Path, path: Path) -> bool:
    resolved = Path(os.path.normpath(path))
    return resolved.is_relative_to(root) and ".." not in path.relative_to(root).parts


def _components_fit(root: Path, path: Path) -> bool:
    return all(len(part.encode("utf-8")) <= MAX_COMPONENT for part in path.relative_to(root).parts)


def _identity(name: str, args: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(args.items()))


# --- run entries and scenario keys ------------------------------------------------------------------


@PROPERTIES
@given(_entry_names, _args)
def test_run_entries_parse_back_to_their_arguments(name: str, args: dict[str, str]) -> None:
    assert parse_run_entry(_entry(name, args)) == (name, args)


@PROPERTIES
@given(_entry_names, _args)
@example("my_plugin", {"instances_path": "/some/dir/file.json"})
@example("x", {"v": "é" * 300})
@example("..", {})
def test_scenario_key_is_one_safe_path_component(name: str, args: dict[str, str]) -> None:
    key = scenario_key(_entry(name, args))
    assert "/" not in key and key not in (".", "..") and not key.startswith(".")
    assert 0 < len(key.encode("utf-8")) <= MAX_COMPONENT, len(key.encode("utf-8"))
    assert key.isascii() and key.isprintable() and " " not in key


@PROPERTIES
@given(_entry_names, _args, _entry_names, _args)
@example("p", {"path": "/a_b"}, "p", {"path": "_a/b"})
@example("p", {"a": "x=1"}, "p", {"a": "x", "x": "1"})
@example("p", {"v": "a" * 300}, "p", {"v": "a" * 299 + "b"})
def test_different_scenarios_never_share_a_key(name1: str, args1: dict[str, str], name2: str,
                                                args2: dict[str, str]) -> None:
    assume(_identity(name1, args1) != _identity(name2, args2))
    assert scenario_key(_entry(name1, args1)) != scenario_key(_entry(name2, args2))


@PROPERTIES
@given(_entry_names, _args, st.permutations(range(4)), _models)
def test_scenario_key_ignores_argument_order_and_the_model(name: str, args: dict[str, str], order: list[int],
                                                           model: str) -> None:
    items = list(args.items())
    shuffled = dict(items[i] for i in order if i < len(items))
    with_model = {**shuffled, "model": model.replace(",", "")}
    assert scenario_key(_entry(name, with_model)) == scenario_key(_entry(name, args))


# --- model paths ------------------------------------------------------------------------------------


@PROPERTIES
@given(_models)
@example("ollama_chat/llama3:8b")
@example("hosted_vllm/org/model")
@example("hosted_vllm/../../etc")
def test_model_path_round_trips_and_stays_inside(model: str) -> None:
    path = model_path(model)  # never refused: no part of these names exceeds 20 characters
    assert model_from_path(path) == model
    target = ROOT / path
    assert _inside(ROOT, target), path
    assert _components_fit(ROOT, target)
    assert all(part not in ("", ".", "..") and not part.startswith(".") for part in PurePosixPath(path).parts)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_model_segments | st.text(_value_chars.filter(lambda c: c != "/"), min_size=80, max_size=300)
                .filter(lambda s: s.strip() == s), min_size=1, max_size=3).map("/".join))
@example("hosted_vllm/" + "m" * 256)
@example("hosted_vllm/" + "名" * 29)
def test_a_model_name_too_long_for_a_directory_is_refused_in_one_line(model: str) -> None:
    """Each part of a model name becomes a directory; one that cannot fit is refused, never cut."""
    try:
        path = model_path(model)
    except ConfigError as exc:
        assert "shorter name" in str(exc) and "\n" not in str(exc)
        # a part of at most 85 UTF-8 bytes is at most 255 bytes percent-encoded: never refused
        assert max(len(part.encode("utf-8")) for part in model.split("/")) > 85
        return
    assert model_from_path(path) == model
    assert _components_fit(ROOT, ROOT / path)


@PROPERTIES
@given(_models, _models)
@example("ollama_chat/llama3:8b", "ollama_chat/llama3%3A8b")
@example("ollama_chat/llama3_8b", "ollama_chat_llama3/8b")
def test_different_models_never_share_a_path(model1: str, model2: str) -> None:
    assume(model1 != model2)
    assert model_path(model1) != model_path(model2)


# --- agent and record paths -------------------------------------------------------------------------

_cells = st.tuples(_entry_names, _args, _models, _methods, _folds)


@PROPERTIES
@given(_cells)
def test_agent_and_record_paths_stay_inside_and_fit(cell: tuple[str, dict[str, str], str, str, int | None]) -> None:
    name, args, model, method, fold = cell
    key = scenario_key(_entry(name, args))
    for root, path in ((ROOT, agent_path(ROOT, key, model, method, fold)),
                       (ROOT.parent, record_path(ROOT.parent, key, model, method, fold))):
        assert _inside(root, path), path
        assert _components_fit(root, path), [len(p.encode()) for p in path.parts]


@PROPERTIES
@given(_cells, _cells)
def test_different_cells_never_share_an_agent_or_record_path(
    cell1: tuple[str, dict[str, str], str, str, int | None], cell2: tuple[str, dict[str, str], str, str, int | None]
) -> None:
    (name1, args1, *rest1), (name2, args2, *rest2) = cell1, cell2
    assume((_identity(name1, args1), *rest1) != (_identity(name2, args2), *rest2))
    key1, key2 = scenario_key(_entry(name1, args1)), scenario_key(_entry(name2, args2))
    model1, method1, fold1 = rest1
    model2, method2, fold2 = rest2
    assert agent_path(ROOT, key1, model1, method1, fold1) != agent_path(ROOT, key2, model2, method2, fold2)
    assert record_path(ROOT, key1, model1, method1, fold1) != record_path(ROOT, key2, model2, method2, fold2)


@settings(max_examples=60, deadline=None)
@given(st.lists(_cells, min_size=1, max_size=4))
def test_the_agent_reader_finds_what_the_writer_wrote(cells: list[tuple[str, dict[str, str], str, str, int | None]]
                                                      ) -> None:
    """``list_agents`` (behind ``register`` and ``helm-optimizer agents``) reads back every identity."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "agents"
        written = {}
        for name, args, model, method, fold in cells:
            key = scenario_key(_entry(name, args))
            path = agent_path(root, key, model, method, fold)
            if any(parent in written.values() or parent.is_file() for parent in path.parents):
                continue  # a model path that is a prefix of a file name: not this property
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
            written[(key, model, method, fold)] = path
        found = {(a.scenario, a.model, a.optimizer, a.fold): a.path for a in list_agents(root)}
        assert found == written


# --- HELM names -------------------------------------------------------------------------------------


def test_shipped_methods_have_distinct_deployment_slugs() -> None:
    methods = sorted({*OPTIMIZERS.names(), *ZERO_SHOT_METHODS})
    slugs = [method_slug(m) for m in methods]
    assert len(set(slugs)) == len(slugs), dict(zip(methods, slugs, strict=True))


@PROPERTIES
@given(_cells, _cells)
@example(("p", {}, "ollama_chat/llama3_8b", "MIPROv2", None), ("p", {}, "ollama_chat_llama3/8b", "MIPROv2", None))
def test_agent_deployment_names_are_distinct_per_agent_file(
    cell1: tuple[str, dict[str, str], str, str, int | None], cell2: tuple[str, dict[str, str], str, str, int | None]
) -> None:
    (name1, args1, model1, method1, fold1), (name2, args2, model2, method2, fold2) = cell1, cell2
    key1, key2 = scenario_key(_entry(name1, args1)), scenario_key(_entry(name2, args2))
    assume((key1, model1, method1, fold1) != (key2, model2, method2, fold2))
    assert agent_deployment_name(model1, method1, key1, fold1) != agent_deployment_name(model2, method2, key2, fold2)
    # the HELM model (leaderboard row) depends on the model and method only
    assert agent_deployment_name(model1, method1, key1, fold1).startswith(deployment_name(model1, method1) + "@")


_runs = st.tuples(_entry_names, _args, _models, _methods, st.one_of(st.none(), st.integers(1, 10_000)),
                  st.integers(0, 2**31), _folds)


def _run_name(run: tuple[str, dict[str, str], str, str, int | None, int, int | None]) -> str:
    name, args, model, method, eval_limit, seed, fold = run
    deployment = agent_deployment_name(model, method, scenario_key(_entry(name, args)), fold)
    return helm_run_name(name, args, deployment, eval_limit=eval_limit, seed=seed, fold=fold)


@PROPERTIES
@given(_runs)
@example(("my_plugin", {"instances_path": "/some/dir/file.json"}, "openai/fake", "MIPROv2", 8, 0, None))
@example(("x", {"v": "名" * 300}, "hosted_vllm/org/model", "ZeroShotCoT", None, 0, 1))
def test_helm_run_name_is_a_directory_name(run: tuple[str, dict[str, str], str, str, int | None, int, int | None]
                                           ) -> None:
    """HELM makes the run name a directory of ``runs/<suite>``: one component, no ``/``, at most 255 bytes."""
    run_name = _run_name(run)
    assert "/" not in run_name and "\x00" not in run_name and run_name not in (".", "..")
    assert 0 < len(run_name.encode("utf-8")) <= MAX_COMPONENT
    assert _inside(ROOT, ROOT / run_name)


@PROPERTIES
@given(_runs, _runs)
@example(("p", {"path": "/a_b"}, "openai/m", "MIPROv2", None, 0, None),
         ("p", {"path": "_a/b"}, "openai/m", "MIPROv2", None, 0, None))
@example(("p", {}, "ollama_chat/llama3_8b", "ZeroShotCoT", None, 0, None),
         ("p", {}, "ollama_chat_llama3/8b", "ZeroShotCoT", None, 0, None))
@example(("p", {"v": "a" * 300}, "openai/m", "MIPROv2", 5, 0, 0),
         ("p", {"v": "a" * 300}, "openai/m", "MIPROv2", 5, 0, 1))
def test_different_evaluations_never_share_a_helm_run(
    run1: tuple[str, dict[str, str], str, str, int | None, int, int | None],
    run2: tuple[str, dict[str, str], str, str, int | None, int, int | None],
) -> None:
    """Two evaluations sharing a run name would share a HELM run directory (HELM skips a finished one)."""
    def identity(run: tuple[str, dict[str, str], str, str, int | None, int, int | None]) -> tuple[object, ...]:
        name, args, model, method, eval_limit, seed, fold = run
        # the seed only matters when it picks instances (a limit or a fold)
        return (_identity(name, args), model, method, eval_limit, seed if eval_limit or fold is not None else None,
                fold)

    assume(identity(run1) != identity(run2))
    assert _run_name(run1) != _run_name(run2)


@settings(max_examples=25, deadline=None)
@given(_entry_names, _args, _models.filter(lambda m: not any(c.isspace() for c in m)),  # LMConfig's rule
       st.sampled_from(sorted(OPTIMIZERS.names())), st.booleans())
def test_evaluation_registers_exactly_the_agent_file_optimization_writes(
    name: str, args: dict[str, str], model: str, method: str, cross_fitted: bool
) -> None:
    """The writer's path (optimize: ``agent_path`` of the dataset's key) is what evaluation finds and serves."""
    from helm_optimizer.agents.store import meta_path
    from helm_optimizer.config import LMConfig
    from helm_optimizer.evaluate import EvaluationRequest, _agent_folds
    from helm_optimizer.helm.deployments import agent_file_deployment
    from helm_optimizer.records import AgentData, AgentMeta, AgentScores, write_record

    entry = _entry(name, args)
    key = scenario_key(entry)
    folds: list[int | None] = [0, 1] if cross_fitted else [None]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        written = []
        for fold in folds:  # what optimize writes
            path = agent_path(out / "agents", key, model, method, fold)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
            meta = AgentMeta(
                scenario=key, run_entry=entry, model=model, optimizer=method, seed=0, num_folds=len(folds),
                fold=fold, config={}, config_fingerprint="c", created_at="t", scores=AgentScores(metric="m"),
                data=AgentData(fingerprint="d", train_size=1, val_size=1, strategy="s", main_metric="m", eval_size=1,
                               eval_ids_fingerprint="e", test_size=1, eval_limit=4 if cross_fitted else None))
            write_record(meta_path(path), meta)
            written.append(path)
        request = EvaluationRequest(scenario=entry, lm=LMConfig(model=model), methods=(method,), output_dir=out,
                                    eval_limit=4 if cross_fitted else None)
        found = _agent_folds(request, key, method)
        assert [(fold, path) for fold, path, _ in found] == list(zip(folds, written, strict=True))
        for fold, path, _ in found:
            served = agent_file_deployment({"model": model}, method, scenario=key, fold=fold, agent_file=path)
            (deployment,) = served.model_deployments
            assert deployment["name"] == agent_deployment_name(model, method, key, fold)
            assert deployment["client_spec"]["args"]["agent_path"] == str(path.resolve())
