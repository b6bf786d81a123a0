"""HEAD-QA from the authors' original JSON files, the files HF ``dvilares/head_qa`` was built from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from helm_optimizer._env import prepare_offline_environment
from helm_optimizer._io import write_text_atomic
from helm_optimizer.errors import ConfigError, DataError
from helm_optimizer.scenarios.medical._files import find_data_file, read_utf8_text, resolve_data_dir
from helm_optimizer.scenarios.medical._helm import helm_definition_path
from helm_optimizer.scenarios.medical._optimization import OptimizationData

prepare_offline_environment()

from helm.benchmark.scenarios.headqa_scenario import HeadQAScenario  # noqa: E402
from helm.benchmark.scenarios.scenario import TRAIN_SPLIT, VALID_SPLIT, Instance  # noqa: E402

__all__ = [
    "LocalHeadQAScenario",
    "head_qa_file",
    "head_qa_instances",
    "head_qa_optimization_data",
    "head_qa_rows",
    "local_hf_dataset",
]

logger = logging.getLogger(__name__)

BENCHMARK = "head_qa"
# HF config name -> folder/file stem of the authors' release (the HF builder used the same mapping).
_LANGUAGE_DIRS = {"en": "HEAD_EN", "es": "HEAD"}
# HF split -> file prefix.
_FILE_PREFIX = {"train": "train", "validation": "dev", "test": "test"}


def head_qa_file(language: str, hf_split: str) -> str:
    """Relative path of one split, e.g. ``HEAD_EN/test_HEAD_EN.json`` for ``("en", "test")``."""
    folder = _LANGUAGE_DIRS.get(language)
    if folder is None:
        raise ConfigError(
            f"HEAD-QA has no language {language!r}; use one of {', '.join(sorted(_LANGUAGE_DIRS))}."
        )
    return f"{folder}/{_FILE_PREFIX[hf_split]}_{folder}.json"


def head_qa_rows(path: Path) -> list[dict[str, Any]]:
    """The rows HF ``dvilares/head_qa`` gives for one raw JSON file, in file order.

    Per question: ``name``, ``year``, ``category`` (from its exam, stripped), ``qid`` and ``ra`` as
    ``int``, ``qtext`` stripped, ``answers`` as ``[{"aid": int, "atext": stripped}]`` and ``image``
    (``None`` when the raw string is empty; otherwise the raw path, since the pictures are not shipped).
    """
    text = read_utf8_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"Data file {path} is not valid JSON ({exc}); use the original file.") from exc
    exams = data.get("exams") if isinstance(data, dict) else None
    if not isinstance(exams, dict) or not exams:
        raise DataError(
            f"Data file {path} has no 'exams' object; expected the HEAD-QA JSON "
            '{"version", "language", "exams": {...}}. Replace it with the original file.'
        )
    rows: list[dict[str, Any]] = []
    for exam_key, exam in exams.items():
        try:
            rows.extend(_exam_rows(exam))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"Data file {path} has a malformed exam {exam_key!r} ({type(exc).__name__}: {exc}); "
                "replace it with the original file."
            ) from exc
    if not rows:
        raise DataError(f"Data file {path} holds no questions; replace it with the original file.")
    return rows


def _exam_rows(exam: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    name, category, year = exam["name"].strip(), exam["category"].strip(), str(exam["year"]).strip()
    for question in exam["data"]:
        image = str(question["image"]).strip()
        yield {
            "name": name,
            "year": year,
            "category": category,
            "qid": int(str(question["qid"]).strip()),
            "qtext": question["qtext"].strip(),
            "ra": int(str(question["ra"]).strip()),
            "image": image or None,
            "answers": [{"aid": int(a["aid"]), "atext": a["atext"].strip()} for a in question["answers"]],
        }


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as JSON can carry it: an image (a picture when it comes from HF) only needs to be there or not."""
    image = row["image"]
    return {**row, "image": None if image is None else (image if isinstance(image, str) else "image")}


def local_hf_dataset(rows: Iterable[Mapping[str, Any]], language: str, parent: Path) -> Path:
    """``rows`` as a local Hugging Face dataset under ``parent``: config ``language``, split ``test``.

    ``datasets.load_dataset(folder, language)``, which is what ``HeadQAScenario.get_instances``
    calls with its ``HUGGING_FACE_DATASET_PATH``, reads them back as the HF rows they are. The
    folder is named by the rows' digest: Hugging Face caches a local dataset under its folder's
    name, so other rows must never sit in a folder of the same name.
    """
    lines = "".join(json.dumps(_json_row(row), ensure_ascii=False) + "\n" for row in rows)
    digest = hashlib.sha256(f"{language}\n{lines}".encode()).hexdigest()[:20]
    folder = parent / f"head_qa_{language}_{digest}"
    if not (folder / "README.md").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / f"{language}.jsonl", lines)
        card = (f"---\nconfigs:\n- config_name: {language}\n  data_files:\n"
                f"  - split: test\n    path: {language}.jsonl\n---\n")
        write_text_atomic(folder / "README.md", card)  # last: marks the folder complete
    return folder


def head_qa_instances(rows: Sequence[Mapping[str, Any]], work_dir: Path, *, language: str = "en",
                      category: str | None = None) -> list[Instance]:
    """HELM's own ``HeadQAScenario.get_instances`` over ``rows`` (HF-style) instead of the HF download.

    HELM filters (``SKIP_VQA``, ``category``) and lays out the instances; they carry HELM's test split.
    """
    if not rows:
        return []
    scenario = HeadQAScenario(language=language, category=category)
    scenario.HUGGING_FACE_DATASET_PATH = str(local_hf_dataset(rows, language, work_dir / "local_rows"))
    instances: list[Instance] = scenario.get_instances(str(work_dir))
    return instances


class LocalHeadQAScenario(HeadQAScenario):  # type: ignore[misc]
    """HELM's ``HeadQAScenario``, reading ``HEAD_EN/test_HEAD_EN.json`` from ``data_dir`` when one is given.

    The raw JSON is mapped to the rows HF ``dvilares/head_qa`` gives (see :func:`head_qa_rows`) and
    handed to HELM's own ``get_instances`` as a local Hugging Face dataset (``SKIP_VQA`` drops the
    67 questions with an image, leaving 2,675 English test instances).
    """

    def __init__(
        self, language: str = "en", category: str | None = None, data_dir: str | None = None
    ) -> None:
        super().__init__(language=language, category=category)
        self.data_dir = data_dir
        self.definition_path = helm_definition_path(HeadQAScenario)

    def get_instances(self, output_path: str) -> list[Instance]:
        directory = resolve_data_dir(self.data_dir)
        if directory is not None:
            path = find_data_file(directory, BENCHMARK, head_qa_file(self.language, "test"))
            folder = local_hf_dataset(head_qa_rows(path), self.language, Path(output_path) / "local_rows")
            self.HUGGING_FACE_DATASET_PATH = str(folder)
        instances: list[Instance] = super().get_instances(output_path)
        return instances


def head_qa_optimization_data(
    data_dir: str | None = None, *, language: str = "en", category: str | None = None
) -> OptimizationData:
    """HEAD-QA train (``train_*.json``, 5 options) and valid (``dev_*.json``), filtered like the test set.

    With no data directory the HF splits ``train`` and ``validation`` of ``dvilares/head_qa`` are used.
    """
    directory = resolve_data_dir(data_dir)
    splits: dict[str, list[Instance]] = {}
    sources: list[str] = []
    for hf_split, helm_split in (("train", TRAIN_SPLIT), ("validation", VALID_SPLIT)):
        if directory is None:
            rows = _hf_rows(language, hf_split)
            origin = f"HF {HeadQAScenario.HUGGING_FACE_DATASET_PATH}:{language} split {hf_split}"
        else:
            path = find_data_file(directory, BENCHMARK, head_qa_file(language, hf_split))
            rows = head_qa_rows(path)
            origin = path.name
        with tempfile.TemporaryDirectory(prefix="hopt-head-qa-") as work:
            built = head_qa_instances(rows, Path(work), language=language, category=category)
        instances = [dataclasses.replace(instance, split=helm_split) for instance in built]
        splits[helm_split] = instances
        text_only = sum(1 for row in rows if row["image"] is None)
        sources.append(
            f"head_qa {origin} ({len(rows):,} questions, {text_only:,} without image, "
            f"{len(instances):,} kept{'' if category is None else f' in category {category!r}'})"
        )
    note = (
        "Official HEAD-QA train (2013-2014 exams, 5 options) and dev (2015 exams, 4 options) splits; "
        "the test split (2016-2017 exams) has 4 options."
    )
    return OptimizationData(train=splits[TRAIN_SPLIT], valid=splits[VALID_SPLIT], sources=sources, note=note)


def _hf_rows(language: str, hf_split: str) -> list[dict[str, Any]]:  # pragma: no cover - needs the network
    from datasets import load_dataset  # type: ignore[import-untyped]

    dataset = load_dataset(HeadQAScenario.HUGGING_FACE_DATASET_PATH, language, split=hf_split)
    return [dict(row) for row in dataset]
