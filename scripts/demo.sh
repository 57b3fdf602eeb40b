#!/usr/bin/env bash
# Fresh machine: install everything, then run the demo (videos land in demo_output/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/install.sh"
cd "$ROOT"
exec .venv/bin/python -m scripts.demo "$@"
