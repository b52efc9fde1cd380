#!/usr/bin/env bash
# The project's own checks: lint, types, then the whole test suite (unit, pytester, lab).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check pytest_drcheck tests benchmarks conftest.py
.venv/bin/mypy --strict pytest_drcheck
exec .venv/bin/pytest tests "$@"
