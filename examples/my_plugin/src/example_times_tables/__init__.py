"""A sample HELM plugin package: the ``times_tables`` run spec, its scenario and its metric.

* ``run_specs`` registers the run spec when imported (the module the ``helm`` entry point names);
* ``scenario`` and ``metric`` hold the classes the run spec names by ``class_name``; HELM imports
  them when a run reaches them.
"""
