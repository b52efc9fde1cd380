"""Check families: one module each. A check gathers observations through a target and returns
an Observation with expected vs observed; checks never import pytest and never assert."""
