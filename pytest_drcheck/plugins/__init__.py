"""The parts of pytest-drcheck's pytest glue besides the core (``pytest_drcheck.plugin``), each
a plugin module registered by the core and talking to it through ``hookspecs``. (The aws
extra's glue, ``pytest_drcheck.aws.plugin``, registers itself: entry point ``drcheck-aws``.)"""

# Registered by the core plugin in this order (see pytest_drcheck.plugin.pytest_addhooks).
PARTS = ("pytest_drcheck.plugins.evidence", "pytest_drcheck.plugins.oscal")
# Every part adds its options to the one group (the first to ask names it).
OPTION_GROUP = ("drcheck", "disaster-recovery drill checks (pytest-drcheck)")
