#!/usr/bin/env bash
# Install the Debian/Ubuntu packages dtrain needs (only those missing).
# Usage: scripts/deps.sh [--check]   (--check: report, install nothing)
set -euo pipefail
PKGS=(build-essential pkg-config openmpi-bin libopenmpi-dev libopenblas-dev
      libhdf5-openmpi-dev hdf5-tools check libpng-dev zlib1g-dev)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all packages present"
    exit 0
fi
echo "deps: missing: ${missing[*]}"
[ "${1:-}" = "--check" ] && exit 1
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
