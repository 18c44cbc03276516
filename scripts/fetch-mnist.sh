#!/usr/bin/env bash
# Download the four MNIST files into DIR (default data/mnist) and check their
# SHA-256. Used by `make data`. Tries several public mirrors; a file that does
# not match its checksum is deleted. Set MNIST_MIRROR=URL to try your own
# mirror first (a folder URL holding the four .gz files).
set -u
DIR=${1:-data/mnist}

# Official SHA-256 of the gzip files as published by the mirrors.
declare -A SHA=(
    [train-images-idx3-ubyte.gz]=440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
    [train-labels-idx1-ubyte.gz]=3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
    [t10k-images-idx3-ubyte.gz]=8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
    [t10k-labels-idx1-ubyte.gz]=f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6
)
# SHA-256 of the uncompressed t10k contents: accepts a copy re-gzipped with
# another header (same pixels), e.g. one copied from a shared folder.
declare -A RAW_SHA=(
    [t10k-images-idx3-ubyte.gz]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    [t10k-labels-idx1-ubyte.gz]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
MIRRORS=(
    https://ossci-datasets.s3.amazonaws.com/mnist
    https://storage.googleapis.com/cvdf-datasets/mnist
    http://yann.lecun.com/exdb/mnist
)
[ -n "${MNIST_MIRROR:-}" ] && MIRRORS=("$MNIST_MIRROR" "${MIRRORS[@]}")

die() { echo "fetch-mnist: error: $*" >&2; exit 1; }

command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
if command -v curl >/dev/null; then
    get() { curl -fsSL --retry 2 --connect-timeout 10 --max-time 300 -o "$2" "$1"; }
elif command -v wget >/dev/null; then
    get() { wget -q --tries=2 --timeout=10 -O "$2" "$1"; }
else
    die "neither curl nor wget is installed; install one, or copy the four MNIST files into $DIR by hand"
fi

# 0 if the file is the right one (gzip bytes, or for t10k the same contents).
verify() {
    local f=$1 name=$2 sum
    sum=$(sha256sum "$f" | cut -d' ' -f1)
    [ "$sum" = "${SHA[$name]}" ] && return 0
    if [ -n "${RAW_SHA[$name]:-}" ]; then
        sum=$(gzip -dc "$f" 2>/dev/null | sha256sum | cut -d' ' -f1)
        [ "$sum" = "${RAW_SHA[$name]}" ] && return 0
    fi
    return 1
}

mkdir -p "$DIR" || die "cannot create $DIR"
[ -w "$DIR" ] || die "$DIR is not writable"
missing=0
for name in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \
            t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    dest="$DIR/$name"
    if [ -f "$dest" ]; then
        if verify "$dest" "$name"; then
            echo "fetch-mnist: $dest present, checksum ok"
            continue
        fi
        echo "fetch-mnist: $dest has a wrong checksum; downloading it again" >&2
        rm -f "$dest"
    fi
    ok=0
    for m in "${MIRRORS[@]}"; do
        part="$dest.part.$$"
        if get "$m/$name" "$part" 2>/dev/null; then
            if verify "$part" "$name"; then
                mv -f "$part" "$dest" && ok=1
                echo "fetch-mnist: $dest from $m, checksum ok"
                break
            fi
            echo "fetch-mnist: $m/$name has a wrong SHA-256; removed, trying the next mirror" >&2
        fi
        rm -f "$part"
    done
    if [ $ok = 0 ]; then
        echo "fetch-mnist: could not download $name from any mirror (${MIRRORS[*]})" >&2
        missing=1
    fi
done
if [ $missing = 1 ]; then
    die "some MNIST files are missing (offline?). Copy them into $DIR by hand and run again,
  or run \`dtrain prepare --mnist DIR\` on a folder that has them (the t10k pair alone is enough:
  it is split 9,000 train / 1,000 test), or \`dtrain prepare --synthetic\` for stand-in digits."
fi
echo "fetch-mnist: all four files in $DIR; next: ./dtrain prepare"
