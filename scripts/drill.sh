#!/usr/bin/env bash
# The main job on the bundled sandbox: install, bring the lab DR site up, run the drill.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/drcheck lab up
exec .venv/bin/pytest --dr-inventory=inventories/lab.yaml --junitxml=drill.xml "$@"
