"""Sample HELM plugin package used in helm-optimizer's documentation and tests."""
