"""Times-table questions ("7 x 8 = ?"): five for training (few-shot and optimization), two for testing."""

from __future__ import annotations

from helm.benchmark.scenarios.scenario import (
    CORRECT_TAG,
    TEST_SPLIT,
    TRAIN_SPLIT,
    Input,
    Instance,
    Output,
    Reference,
    Scenario,
    ScenarioMetadata,
)

TRAIN_FACTORS = [(2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]
TEST_FACTORS = [(7, 8), (8, 9)]


class TimesTablesScenario(Scenario):
    """Products of two one-digit numbers; the reference is the product written in digits."""

    name = "times_tables"
    description = "Products of two one-digit numbers."
    tags = ["arithmetic"]  # noqa: RUF012  (HELM declares tags as a plain class attribute)

    def get_instances(self, output_path: str) -> list[Instance]:
        splits = [(TRAIN_SPLIT, TRAIN_FACTORS), (TEST_SPLIT, TEST_FACTORS)]
        return [
            Instance(
                id=f"{split}-{number:03d}",
                input=Input(text=f"{a} x {b} = ?"),
                references=[Reference(output=Output(text=str(a * b)), tags=[CORRECT_TAG])],
                split=split,
            )
            for split, factors in splits
            for number, (a, b) in enumerate(factors, start=1)
        ]

    def get_metadata(self) -> ScenarioMetadata:
        return ScenarioMetadata(name=self.name, main_metric="number_match", main_split="test")
