"""Data and scenario of the sweep-scheduler benchmark's plugin; ``sched_plugin.py`` imports this sibling module.

Deterministic one-step arithmetic questions (``a+b=?`` or ``a*b=?``), as many as asked: the fake
server's arithmetic solver knows every answer, so its ``accuracy`` alone decides which it gets right.
"""

from __future__ import annotations

import random

from helm.benchmark.scenarios.scenario import (
    CORRECT_TAG,
    TEST_SPLIT,
    TRAIN_SPLIT,
    VALID_SPLIT,
    Input,
    Instance,
    Output,
    Reference,
    Scenario,
    ScenarioMetadata,
)

_OPS = {"add": ("+", lambda a, b: a + b), "mul": ("*", lambda a, b: a * b)}


class SchedArithScenario(Scenario):
    name = "sched_arith"
    description = "Generated one-step arithmetic questions (the sweep-scheduler benchmark)."
    tags = ["arithmetic"]  # noqa: RUF012  (HELM's Scenario declares a list)

    def __init__(self, op: str = "add", train: int = 24, valid: int = 24, test: int = 24) -> None:
        super().__init__()
        if op not in _OPS:
            raise ValueError(f"op must be one of {', '.join(_OPS)}, not {op!r}")
        self.op = op
        self.sizes = {TRAIN_SPLIT: int(train), VALID_SPLIT: int(valid), TEST_SPLIT: int(test)}

    def get_instances(self, output_path: str) -> list[Instance]:
        symbol, fn = _OPS[self.op]
        rng = random.Random(f"sched-arith:{self.op}")
        seen: set[tuple[int, int]] = set()
        out: list[Instance] = []
        for split, count in self.sizes.items():
            for index in range(count):
                while True:
                    pair = (rng.randint(2, 99), rng.randint(2, 99))
                    if pair not in seen:
                        seen.add(pair)
                        break
                a, b = pair
                out.append(Instance(
                    id=f"{split}-{index:04d}", input=Input(text=f"Q: {a}{symbol}{b}=?"),
                    references=[Reference(output=Output(text=str(fn(a, b))), tags=[CORRECT_TAG])], split=split,
                ))
        return out

    def get_metadata(self) -> ScenarioMetadata:
        return ScenarioMetadata(name=self.name, main_metric="exact_match", main_split="test")
