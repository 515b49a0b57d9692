#!/usr/bin/env bash
# Installs everything tumorsynth and its tests need on a fresh Debian machine, as the README says:
# Debian's chromium (the reader-study app's browser tests drive it headless; nothing downloads a
# browser) and a virtual environment .venv with the package and every extra. constraints.txt pins
# the CPU build of torch for this install; the package itself asks only for ranges.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
  else
    echo "install.sh: chromium not found and apt-get cannot run as this user; install Debian's" \
      "chromium for the browser tests (they fail in CI without it)" >&2
  fi
fi
python3 -m venv .venv
.venv/bin/pip install -c constraints.txt -e ".[all]"
