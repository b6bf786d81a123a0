"""Data and scenario of the local plugin example; ``local_plugin.py`` imports this sibling module.

It is a plain module next to the plugin file, not an installed package: HELM finds it only
because the plugin file's directory is on ``sys.path`` (see ``docs/plugins.md``).
"""

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

# (question, answer, split): 6 training questions for optimization, 4 test questions for HELM.
QUESTIONS = [
    ("1+1=?", "2", TRAIN_SPLIT),
    ("2+3=?", "5", TRAIN_SPLIT),
    ("4+4=?", "8", TRAIN_SPLIT),
    ("9-3=?", "6", TRAIN_SPLIT),
    ("3*3=?", "9", TRAIN_SPLIT),
    ("7+5=?", "12", TRAIN_SPLIT),
    ("6+6=?", "12", TEST_SPLIT),
    ("8-5=?", "3", TEST_SPLIT),
    ("4*5=?", "20", TEST_SPLIT),
    ("9+9=?", "18", TEST_SPLIT),
]


def arith_instances(questions: list[tuple[str, str, str]]) -> list[Instance]:
    """HELM instances with ids ``train-001``..., ``test-001``..."""
    instances = []
    counters = {TRAIN_SPLIT: 0, TEST_SPLIT: 0}
    for question, answer, split in questions:
        counters[split] += 1
        instances.append(
            Instance(
                id=f"{split}-{counters[split]:03d}",
                input=Input(text=f"Q: {question}"),
                references=[Reference(output=Output(text=answer), tags=[CORRECT_TAG])],
                split=split,
            )
        )
    return instances


class ArithScenario(Scenario):
    name = "local_arith"
    description = "Ten one-step arithmetic questions (the local plugin example)."
    tags = ["arithmetic"]  # noqa: RUF012  (HELM's Scenario declares a list)

    def get_instances(self, output_path: str) -> list[Instance]:
        return arith_instances(QUESTIONS)

    def get_metadata(self) -> ScenarioMetadata:
        return ScenarioMetadata(name=self.name, main_metric="exact_match", main_split="test")
