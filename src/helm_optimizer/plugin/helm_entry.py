"""The module named in this package's ``helm`` entry point.

Importing it (``helm-run`` does so automatically once the package is installed) registers:

* the offline tokenizer, the prompt-builder deployment and the embedded models (``local/smollm2``);
* agent deployments for every agents directory listed in ``HELM_OPTIMIZER_AGENTS_DIR``;
* this package's run specs (``hopt_medcalc_bench``, ``hopt_medec``, ``hopt_head_qa``, ``hopt_medbullets``);
* every ``helm/benchmark/run_specs`` directory on ``sys.path`` as part of HELM's run spec namespace.

It has no other side effect and never reaches the network.
"""

from __future__ import annotations

import logging

from helm_optimizer._env import prepare_nltk

logger = logging.getLogger(__name__)

prepare_nltk()

from helm_optimizer.helm.deployments import env_agents_dirs, register_agents_dir, register_core  # noqa: E402
from helm_optimizer.helm.loading import extend_run_specs_namespace  # noqa: E402
from helm_optimizer.plugin import run_specs as _run_specs  # noqa: E402,F401  (registers run specs)

register_core()
for _agents_dir in env_agents_dirs():
    if not register_agents_dir(_agents_dir):
        logger.warning("HELM_OPTIMIZER_AGENTS_DIR names %s, which holds no agents; no deployments registered "
                       "from it.", _agents_dir)
extend_run_specs_namespace()
