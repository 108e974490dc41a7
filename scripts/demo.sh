#!/usr/bin/env bash
# Install dependencies, build, and run the main job: the example program on
# the engine through the drop-in, then the engine's benchmark against the kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
echo "== ptimers exec -- build/examples/demo"
build/tools/ptimers exec -- build/examples/demo
