#!/usr/bin/env bash
# Installs what tern needs, builds it, and runs `tern demo` (extra args pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
exec build/release/tern demo "$@"
