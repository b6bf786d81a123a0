"""HEAD-QA from the authors' original JSON files, the files HF ``dvilares/head_qa`` was built from."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from helm_optimizer._env import prepare_offline_environment
from helm_optimizer.errors import ConfigError, DataError
from helm_optimizer.scenarios.medical._files import find_data_file, read_utf8_text, resolve_data_dir
from helm_optimizer.scenarios.medical._helm import helm_definition_path
from helm_optimizer.scenarios.medical._optimization import OptimizationData

prepare_offline_environment()

from helm.benchmark.scenarios.headqa_scenario import HeadQAScenario  # noqa: E402
from helm.benchmark.scenarios.scenario import (  # noqa: E402
    CORRECT_TAG,
    TEST_SPLIT,
    TRAIN_SPLIT,
    VALID_SPLIT,
    Input,
    Instance,
    Output,
    Reference,
)

__all__ = [
    "LocalHeadQAScenario",
    "head_qa_file",
    "head_qa_instances",
    "head_qa_optimization_data",
    "head_qa_rows",
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


def head_qa_instances(
    rows: Iterable[Mapping[str, Any]],
    split: str,
    *,
    category: str | None = None,
    skip_vqa: bool = HeadQAScenario.SKIP_VQA,
    skip_textqa: bool = HeadQAScenario.SKIP_TEXTQA,
) -> list[Instance]:
    """HELM instances from HF-style rows, with the filters and layout of ``HeadQAScenario.get_instances``."""
    instances: list[Instance] = []
    for example in rows:
        if skip_vqa and example["image"] is not None:
            continue
        if skip_textqa and example["image"] is None:
            continue
        if category is not None and example["category"] != category:
            continue
        instances.append(
            Instance(
                input=Input(text=example["qtext"]),
                references=[
                    Reference(
                        Output(text=option["atext"]),
                        tags=[CORRECT_TAG] if option["aid"] == example["ra"] else [],
                    )
                    for option in example["answers"]
                ],
                split=split,
                extra_data={
                    "id": example["qid"],
                    "name": example["name"],
                    "category": example["category"],
                    "year": example["year"],
                },
            )
        )
    return instances


class LocalHeadQAScenario(HeadQAScenario):  # type: ignore[misc]
    """HELM's ``HeadQAScenario``, reading ``HEAD_EN/test_HEAD_EN.json`` from ``data_dir`` when one is given.

    The raw JSON is mapped to the rows HF ``dvilares/head_qa`` gives (see :func:`head_qa_rows`) and
    then filtered and laid out exactly as HELM does (``SKIP_VQA`` drops the 67 questions with an
    image, leaving 2,675 English test instances).
    """

    def __init__(
        self, language: str = "en", category: str | None = None, data_dir: str | None = None
    ) -> None:
        super().__init__(language=language, category=category)
        self.data_dir = data_dir
        self.definition_path = helm_definition_path(HeadQAScenario)

    def get_instances(self, output_path: str) -> list[Instance]:
        directory = resolve_data_dir(self.data_dir)
        if directory is None:
            instances: list[Instance] = super().get_instances(output_path)
            return instances
        path = find_data_file(directory, BENCHMARK, head_qa_file(self.language, "test"))
        return head_qa_instances(
            head_qa_rows(path),
            TEST_SPLIT,
            category=self.category,
            skip_vqa=self.SKIP_VQA,
            skip_textqa=self.SKIP_TEXTQA,
        )


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
        instances = head_qa_instances(rows, helm_split, category=category)
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
