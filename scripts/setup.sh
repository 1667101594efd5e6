#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: system packages, OpenBLAS as the BLAS, npm packages,
# the native addon and the TypeScript build. Safe to re-run; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libtorch-dev libdnnl-dev chromium libopenblas0-openmp libgloo-dev python3-torch python3-numpy g++ make python3 fonts-dejavu-core fonts-noto-cjk fonts-noto-color-emoji)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ -z "${LIBTORCH:-}" ] && [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libtorch-dev alone leaves the reference BLAS selected (6 GFLOP/s matmul instead of ~190): select OpenBLAS.
if [ -z "${LIBTORCH:-}" ]; then
  for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    want=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-openmp | head -n1 || true)
    cur=$(readlink -f "/etc/alternatives/$alt" 2>/dev/null || true)
    if [ -n "$want" ] && [ "$cur" != "$(readlink -f "$want")" ]; then
      SUDO=""
      [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO update-alternatives --set "$alt" "$want" >/dev/null
    fi
  done
fi

# npm packages (exactly the lock file); skipped when node_modules matches the lock.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # onnxruntime-node (a dev dependency) would fetch CUDA binaries from NuGet, which is not needed for CPU.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi

# Native addon: rebuilt when any native source is newer than the built module.
addon=native/build/Release/dedos_native.node
if [ ! -f "$addon" ] || [ -n "$(find native/src native/binding.gyp native/config.cjs -newer "$addon" 2>/dev/null | head -n1)" ]; then
  echo "setup: building the native addon (about a minute)"
  npm run --silent build:native >/tmp/dedos-native-build.log 2>&1 || { tail -n 40 /tmp/dedos-native-build.log; exit 1; }
fi

# TypeScript
npx tsc -p tsconfig.json
