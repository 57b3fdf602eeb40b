#!/usr/bin/env bash
# Fresh machine: install everything, then run the whole test suite, the real-ComfyUI tests included.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/install.sh"
cd "$ROOT"
PYTHONDONTWRITEBYTECODE=1 exec .venv/bin/python -m pytest -p no:cacheprovider tests "$@"
