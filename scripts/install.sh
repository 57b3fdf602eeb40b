#!/usr/bin/env bash
# Installs everything the demo and the tests need into ./.venv (idempotent: a second run only checks):
# torch (CPU), the ComfyUI host's requirements (the host folder: $COMFYUI_PATH, else ../shared/comfyui-host,
# as scripts/harness.py finds it), this pack's requirements.txt, the `test` extra of pyproject.toml, and
# Debian's Chromium for the frontend tests. One line per step; pip's output goes to .venv/install.log.
#   bash scripts/install.sh [--dry-run]    # --dry-run: say each step, run none
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=$([ "${1:-}" = "--dry-run" ] && echo 1 || echo "")
cd "$ROOT"
START=$(date +%s)
say() { echo "[install] $*"; }
[ -x .venv/bin/python ] || { say "creating .venv"; python3 -m venv .venv; }
LOG="$ROOT/.venv/install.log"
: >"$LOG"
quiet() {  # run a step with its output in the log; on failure show the log's end
  if [ -n "$DRY_RUN" ]; then
    say "  would run: $*"
  elif ! "$@" >>"$LOG" 2>&1; then
    echo "[install] FAILED: $*; the end of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
if ! python -c 'import torch' 2>/dev/null; then
  say "torch (CPU, about 200 MB download)"
  quiet pip install "torch==2.13.0"
fi
HOST="$(python -m scripts.harness host)"  # the host the tests and the demo will use (or an error)
if [ -n "$HOST" ]; then
  if python -c 'import sys; sys.path.insert(0, sys.argv[1]); import comfy_host, aiohttp, av, comfyui_frontend_package' \
       "$HOST" 2>/dev/null; then
    say "ComfyUI host at $HOST: requirements present"
  else
    say "ComfyUI host at $HOST: installing its requirements"
    quiet bash "$HOST/install.sh"
  fi
else
  say "no ComfyUI host (set COMFYUI_PATH): the tests against the real ComfyUI will be skipped"
fi
say "the pack's requirements.txt and the test extra (pyproject.toml)"
python - >"$ROOT/.venv/test-requirements.txt" <<'PY'
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]))
PY
quiet pip install -r requirements.txt -r "$ROOT/.venv/test-requirements.txt"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "Chromium (Debian package) for the frontend tests"
    quiet apt-get update -q
    quiet apt-get install -y -q chromium
  else
    say "chromium is missing: install Debian's 'chromium' package for the frontend tests"
  fi
fi
say "done in $(( $(date +%s) - START )) s"
