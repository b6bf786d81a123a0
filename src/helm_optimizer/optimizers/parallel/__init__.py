"""Concurrent construction and scoring of independent optimizer candidates.

DSPy builds random-search and MIPROv2 demo candidates one after another, each a sequential
bootstrap over the training set, proposes MIPROv2 instructions one LM call at a time, and scores
candidates one ``Evaluate`` at a time. Most of that work does not depend on the rest: here every
random choice is drawn first, in DSPy's order and from DSPy's generators, and the LM work then runs
on one :class:`WorkPool` per compile as soon as what it needs exists:

* each bootstrap (a chain of calls that must run one at a time) holds one worker, and chains go
  before single evaluation calls, which fill the other workers;
* each evaluation is split into its examples, and a candidate is scored as soon as it is built;
* MIPROv2's dataset summary and its score of the unoptimized program start with the bootstraps,
  each instruction proposal starts once the demo sets it reads exist, and the Optuna trials drawn
  in the sampler's random start-up phase (whose suggestions do not depend on scores) are asked
  together and evaluated as soon as the instruction and demos they picked exist.

At most ``num_threads`` LM calls are in flight, whatever the LM. For the same seed and the same LM
answers the result is the program DSPy would return; scores are computed as ``dspy.Evaluate``
computes them (``round(100 * mean, 2)``, a failed example scoring 0). MIPROv2 makes one proposal
fewer per predictor (three calls with the program-aware proposer): DSPy proposes an instruction for
slot 0 and then overwrites it with the original one; here that proposal's random draws are taken
but its calls are not made.
"""

from helm_optimizer.optimizers.parallel.candidates import (
    CandidatePlan,
    candidate_plans,
    score_candidates,
    start_candidates,
)
from helm_optimizer.optimizers.parallel.mipro import ParallelMIPROv2
from helm_optimizer.optimizers.parallel.workpool import WorkPool, gather

__all__ = [
    "CandidatePlan",
    "ParallelMIPROv2",
    "WorkPool",
    "candidate_plans",
    "gather",
    "score_candidates",
    "start_candidates",
]
