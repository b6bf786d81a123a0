"""A whole sweep with a sentinel API key: not one file it writes contains the key.

A key inside ``api_base`` (``http://user:sk-...@host/v1``) is refused with one line that shows the
URL with the credentials masked; nothing is written that contains it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.faults.conftest import Reference
from tests.faults.procs import (
    DEMO_DATA,
    KEY_ENV,
    MODEL,
    SENTINEL_KEY,
    child_env,
    error_lines,
    run_cli,
    tiny_sweep,
    write_yaml,
)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []


def test_sentinel_key_is_in_no_file_the_sweep_wrote(reference: Reference) -> None:
    # The reference sweep ran with KEY_ENV=SENTINEL_KEY, api_key_env naming it, and -vv (debug logs).
    assert KEY_ENV in reference.config.read_text()
    scanned = {
        "output dir": _files(reference.output_dir),  # agents, meta, records, report, HELM runs, prod_env, caches, logs
        "HELM_OPTIMIZER_CACHE_DIR": _files(reference.cache_dir),  # (a sweep caches under the output dir)
        "console output": [reference.config.parent / "child.log"],
        # where HELM is pointed while building prompts, outside the output directory
        "prompt-builder prod_env": [p for d in Path(tempfile.gettempdir()).glob("helm-optimizer-prod-env*")
                                    for p in _files(d)],
    }
    kinds = {p.parent.name for p in scanned["output dir"]} | {p.suffix for p in scanned["output dir"]}
    assert {".json", ".log", "logs", "prod_env"} <= kinds, kinds  # the scan saw every kind of output
    assert any("cache" in p.parts for p in scanned["output dir"])  # LM caches included
    leaks = [str(p) for files in scanned.values() for p in files if SENTINEL_KEY.encode() in p.read_bytes()]
    assert leaks == []
    assert SENTINEL_KEY not in reference.output


def _with_credentials(api_base: str) -> str:
    """``api_base`` with the sentinel key inside it, as a gateway URL with basic auth would carry it."""
    scheme, rest = api_base.split("://", 1)
    return f"{scheme}://user:{SENTINEL_KEY}@{rest}"


def _credentials_cases(api_base: str, out: Path, work: Path) -> dict[str, list[str]]:
    secret = _with_credentials(api_base)
    model = {"model": MODEL, "api_base": api_base, "api_key_env": KEY_ENV}
    common = ["--scenario", "head_qa", "--model", MODEL, "--data-dir", str(DEMO_DATA), "--output-dir", str(out)]
    return {
        "sweep: models.api_base": ["sweep", str(write_yaml(work / "a.yaml", tiny_sweep(secret, out)))],
        "sweep: prompt_model.api_base": ["sweep", str(write_yaml(work / "b.yaml", tiny_sweep(
            api_base, out, models=[{**model, "prompt_model": {**model, "api_base": secret}}])))],
        "optimize --api-base": ["optimize", *common, "--api-base", secret, "--optimizer", "LabeledFewShot"],
        "optimize --prompt-api-base": ["optimize", *common, "--api-base", api_base, "--optimizer", "LabeledFewShot",
                                       "--prompt-model", MODEL, "--prompt-api-base", secret],
        "evaluate --api-base": ["evaluate", *common, "--api-base", secret, "--methods", "baseline"],
    }


CASES = ["sweep: models.api_base", "sweep: prompt_model.api_base", "optimize --api-base",
         "optimize --prompt-api-base", "evaluate --api-base"]


@pytest.mark.parametrize("case", CASES)
def test_a_key_inside_api_base_is_refused_in_one_line_and_never_written(case: str, clean_server: FakeOpenAIServer,
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = _credentials_cases(clean_server.api_base, out, tmp_path)[case]
    before = clean_server.requests
    code, output = run_cli(argv, tmp_path / "child.log", child_env(tmp_path / "cache"))
    assert code == 2, output[-3000:]
    assert "Traceback" not in output
    (line,) = error_lines(output)
    assert "carries credentials" in line and "api_key_env" in line and "***@127.0.0.1" in line, line
    assert SENTINEL_KEY not in output
    assert clean_server.requests == before  # refused before any call (and before any reachability check)
    leaks = [str(p) for p in _files(tmp_path) if p.name not in ("a.yaml", "b.yaml")
             and SENTINEL_KEY.encode() in p.read_bytes()]
    assert leaks == []
