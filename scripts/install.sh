#!/usr/bin/env bash
# Installs everything the demo and the tests need into ./.venv (idempotent):
# torch (CPU), the pinned ComfyUI's requirements (../shared/comfyui-host/install.sh or
# $COMFYUI_HOST), this pack's requirements, pytest, and Debian's Chromium for the
# frontend tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="${COMFYUI_HOST:-$ROOT/../shared/comfyui-host}"
cd "$ROOT"
[ -x .venv/bin/python ] || python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -c 'import torch' 2>/dev/null || pip install -q "torch==2.13.0"
if [ -f "$HOST/install.sh" ]; then
  python -c 'import sys; sys.path.insert(0, sys.argv[1]); import comfy_host' "$HOST" 2>/dev/null \
    && python -c 'import aiohttp, av, comfyui_frontend_package' 2>/dev/null \
    || bash "$HOST/install.sh"
else
  echo "[install] no ComfyUI host at $HOST: the tests against the real ComfyUI will be skipped" >&2
fi
pip install -q -r requirements.txt pytest av imageio
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -q && apt-get install -y -q chromium) >/dev/null
  else
    echo "[install] chromium is missing: install Debian's 'chromium' package for the frontend tests" >&2
  fi
fi
