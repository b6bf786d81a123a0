"""MEDEC (medical error detection and correction) from local copies of the files HELM downloads."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from helm_optimizer._env import prepare_offline_environment
from helm_optimizer.errors import DataError
from helm_optimizer.scenarios.medical._files import (
    find_data_file,
    optional_data_file,
    read_csv_records,
    resolve_data_dir,
)
from helm_optimizer.scenarios.medical._helm import helm_definition_path
from helm_optimizer.scenarios.medical._optimization import OptimizationData

prepare_offline_environment()

from helm.benchmark.scenarios.medec_scenario import MedecScenario  # noqa: E402
from helm.benchmark.scenarios.scenario import TEST_SPLIT, TRAIN_SPLIT, VALID_SPLIT, Instance  # noqa: E402

__all__ = [
    "MEDEC_TEST_FILE",
    "MEDEC_TRAIN_FILE",
    "MEDEC_VALID_FILE",
    "LocalMedecScenario",
    "medec_optimization_data",
    "read_medec_csv",
]

logger = logging.getLogger(__name__)

BENCHMARK = "medec"
MEDEC_TEST_FILE = "MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv"
MEDEC_VALID_FILE = "MEDEC-MS-ValidationSet-with-GroundTruth-and-ErrorType.csv"
MEDEC_TRAIN_FILE = "MEDEC-Full-TrainingSet-with-ErrorType.csv"
VALID_URL = (
    f"https://raw.githubusercontent.com/abachaa/MEDEC/{MedecScenario.GIT_HASH}/MEDEC-MS/{MEDEC_VALID_FILE}"
)
# Columns HELM's process_csv reads (it tolerates their absence with defaults; a real file has them all).
_REQUIRED = ("Sentences", "Error Flag", "Error Sentence ID", "Corrected Sentence")


class LocalMedecScenario(MedecScenario):  # type: ignore[misc]
    """HELM's ``MedecScenario``, reading ``MEDEC-MS-TestSet-...csv`` from ``data_dir`` when one is given.

    Instances are made by HELM's own ``process_csv``, so they are identical to HELM's (597 for the
    real test file: the 328 all-empty UW placeholder rows are skipped).
    """

    def __init__(self, data_dir: str | None = None) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.definition_path = helm_definition_path(MedecScenario)

    def get_instances(self, output_path: str) -> list[Instance]:
        directory = resolve_data_dir(self.data_dir)
        if directory is None:
            instances: list[Instance] = super().get_instances(output_path)
            return instances
        return read_medec_csv(find_data_file(directory, BENCHMARK, MEDEC_TEST_FILE), TEST_SPLIT)


def read_medec_csv(path: Path, split: str) -> list[Instance]:
    """Instances of one MEDEC CSV, built by HELM's ``MedecScenario.process_csv`` after checking the file."""
    read_csv_records(path, _REQUIRED)  # empty, non-UTF-8 and missing columns fail here with a clear message
    try:
        instances: list[Instance] = MedecScenario().process_csv(str(path), split)
    except (ValueError, AttributeError) as exc:
        raise DataError(
            f"Data file {path} has a malformed row ({exc}); replace it with the original benchmark file."
        ) from exc
    if not instances:
        raise DataError(f"Data file {path} has no rows with 'Sentences'; replace it with the original file.")
    return instances


def medec_optimization_data(
    data_dir: str | None = None, *, download_dir: str | None = None
) -> OptimizationData:
    """MEDEC-MS training set (if available) as train and the MEDEC-MS validation set as valid.

    Offline the training file is usually absent: then ``train`` is empty and ``note`` says so.
    With no data directory both files are downloaded from the commit HELM pins, into
    ``download_dir`` (default: HELM's scenario cache ``benchmark_output/scenarios/medec``).
    """
    directory = resolve_data_dir(data_dir)
    if directory is None:
        return _download(download_dir or os.path.join("benchmark_output", "scenarios", BENCHMARK))
    valid_path = find_data_file(directory, BENCHMARK, MEDEC_VALID_FILE)
    valid = read_medec_csv(valid_path, VALID_SPLIT)
    sources = [_describe(valid_path, valid)]
    train_path = optional_data_file(directory, BENCHMARK, MEDEC_TRAIN_FILE)
    if train_path is None:
        note = (
            f"{MEDEC_TRAIN_FILE} is not in {directory}; train is empty and valid is the MEDEC-MS "
            "validation set. Split valid for optimization, or add the training file."
        )
        return OptimizationData(train=[], valid=valid, sources=sources, note=note)
    train = read_medec_csv(train_path, TRAIN_SPLIT)
    sources.insert(0, _describe(train_path, train))
    return OptimizationData(
        train=train, valid=valid, sources=sources, note="Official MEDEC-MS training and validation sets."
    )


def _describe(path: Path, instances: list[Instance]) -> str:
    with_error = sum(1 for i in instances if i.references[0].output.text != "CORRECT")
    return (
        f"medec {path.name} ({len(instances):,} notes, {with_error:,} with an error, "
        f"{len(instances) - with_error:,} correct)"
    )


def _download(cache_dir: str) -> OptimizationData:  # pragma: no cover - needs the network
    scenario = MedecScenario()
    os.makedirs(cache_dir, exist_ok=True)
    train_csv = scenario.download_csv(MedecScenario.TRAIN_URL, cache_dir, "medec_train.csv")
    valid_csv = scenario.download_csv(VALID_URL, cache_dir, "medec_valid.csv")
    train = read_medec_csv(Path(train_csv), TRAIN_SPLIT)
    valid = read_medec_csv(Path(valid_csv), VALID_SPLIT)
    return OptimizationData(
        train=train,
        valid=valid,
        sources=[
            _describe(Path(MedecScenario.TRAIN_URL.rsplit("/", 1)[1]), train),
            _describe(Path(MEDEC_VALID_FILE), valid),
        ],
        note=f"Downloaded from abachaa/MEDEC at commit {MedecScenario.GIT_HASH} (the commit HELM pins).",
    )
