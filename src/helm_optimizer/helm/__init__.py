"""The HELM-integration layer: everything helm-optimizer needs from HELM, in one place.

* :mod:`.loading`: HELM's configs and plugins, loaded the way ``helm-run`` loads them, with errors;
* :mod:`.runner`: HELM's ``Runner`` callable from Python, HELM's stray prints kept off the console;
* :mod:`.task`: a run entry's run spec, its instances, the exact prompt and gold HELM builds;
* :mod:`.subsets`: the deterministic evaluation subsets and cross-fitting folds of a test split;
* :mod:`.profiles`: per-benchmark adjustments on top of HELM's run specs (local data, corrected metrics);
* :mod:`.deployments`: the model deployments, metadata and tokenizers helm-optimizer registers.

It imports nothing from the layers above it (``scenarios``, ``plugin``, ``optimize``, ``evaluate``,
``sweep``, ``cli``); HELM objects name our classes by ``class_name`` strings only.
"""
