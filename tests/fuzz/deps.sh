#!/usr/bin/env bash
# The Debian packages `make check-fuzz` needs besides dtrain's own
# (scripts/deps.sh): clang, and libclang-rt-<major>-dev, which holds
# libFuzzer and the sanitizer runtimes for that clang. Installs what is missing.
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
updated=0
install() {
    [ $updated = 1 ] || { $SUDO apt-get update -q; updated=1; }
    $SUDO apt-get install -y -q --no-install-recommends "$@"
}
bash "$(dirname "$0")/../../scripts/deps.sh"
command -v clang >/dev/null || { echo "fuzz deps: missing: clang"; install clang; }
major=$(clang -dumpversion | cut -d. -f1)
rt="libclang-rt-$major-dev"
if ! have "$rt"; then
    echo "fuzz deps: missing: $rt (libFuzzer, sanitizer runtimes)"
    install "$rt"
fi
echo "fuzz deps: clang $major and $rt present"
