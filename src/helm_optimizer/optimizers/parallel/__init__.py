"""DSPy's random search and MIPROv2, their independent LM work run concurrently on one work pool.

DSPy builds random-search and MIPROv2 demo candidates one after another (each a sequential
bootstrap over the training set), proposes MIPROv2's instructions one LM call at a time and scores
candidates one ``Evaluate`` at a time. Most of that work does not depend on the rest. Here every
random choice is drawn first, from generators seeded as DSPy seeds its own and in DSPy's order; the
LM work then runs on one :class:`WorkPool` per compile as soon as what it needs exists, through
DSPy's public API (``BootstrapFewShot`` / ``LabeledFewShot`` ``compile``, ``GroundedProposer``'s
``propose_instruction_for_predictor``, ``create_dataset_summary``) and optuna's ask/tell API:

* each bootstrap (a chain of calls that must run one at a time) holds one worker, and chains go
  before single evaluation calls, which fill the other workers;
* each evaluation is split into its examples, and a candidate is scored as soon as it is built;
* MIPROv2's dataset summary and its score of the unoptimized program start with the bootstraps,
  each instruction proposal starts once the demo sets it reads exist, and the trials drawn in the
  sampler's random start-up phase are asked together and evaluated as soon as what they chose exists.

At most ``num_threads`` LM calls are in flight. For the same settings, seed and LM answers the
result is the program DSPy returns; scores are ``dspy.Evaluate``'s (``round(100 * mean, 2)``, a
failed example scoring 0). Two differences, both fewer LM calls: an evaluation of a (program,
example) pair already asked is shared instead of asked again, and MIPROv2's first proposal per
predictor, which DSPy makes and then replaces with the predictor's own instruction, is not made.
"""

from helm_optimizer.optimizers.parallel.candidates import DemoBudget
from helm_optimizer.optimizers.parallel.mipro import MiproV2
from helm_optimizer.optimizers.parallel.random_search import RandomSearchResult, random_search
from helm_optimizer.optimizers.parallel.workpool import WorkPool

__all__ = ["DemoBudget", "MiproV2", "RandomSearchResult", "WorkPool", "random_search"]
