#!/usr/bin/env bash
# Runs each libFuzzer harness for FUZZ_SECONDS (default 60), two at a time,
# from a fresh copy of its seed corpus (tests/fuzz/corpus/<harness>/).
# Fails on any crash, hang (-timeout), sanitizer report, leak, or an
# allocation larger than the input justifies (-malloc_limit_mb with inputs
# capped by -max_len). Prints per harness: executions, coverage, time.
# Usage: tests/fuzz/run.sh build/fuzz/fuzz_<name>...
set -u
here=$(cd "$(dirname "$0")" && pwd)
secs=${FUZZ_SECONDS:-60}
out=$(dirname "${1:-build/fuzz/x}")
work="$out/work"
rm -rf "$work"
mkdir -p "$work"

# limits per harness: max_len (bytes), malloc_limit_mb, rss_limit_mb
limits() {
    case "$1" in
    idx_raw) echo "4096 1 512" ;;        # allocates at most the file's payload
    idx_gz) echo "4096 16 512" ;;        # <= 2 x inflated bytes (deflate: ~1032 x 4 KB)
    data_raw) echo "65536 16 1024" ;;    # the gate reads in 64 KB blocks
    data_struct) echo "256 32 1024" ;;   # files of at most a few hundred images
    ckpt) echo "32768 32 1024" ;;
    *) echo "4096 16 512" ;;
    esac
}

run_one() {
    local bin=$1 name
    name=$(basename "$bin")
    name=${name#fuzz_}
    local corpus="$work/$name" art="$work/$name-artifacts/" tmp="$work/$name-tmp"
    mkdir -p "$corpus" "$art" "$tmp"
    cp "$here/corpus/$name"/* "$corpus"/ 2>/dev/null
    read -r maxlen mlimit rlimit < <(limits "$name")
    local start=$SECONDS
    TMPDIR="$tmp" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb="$rlimit" -malloc_limit_mb="$mlimit" \
        -max_len="$maxlen" -print_final_stats=1 -artifact_prefix="$art" "$corpus" \
        >"$work/$name.log" 2>&1
    echo $? >"$work/$name.rc"
    echo $((SECONDS - start)) >"$work/$name.time"
}

pids=()
for bin in "$@"; do
    run_one "$bin" &
    pids+=($!)
    if [ ${#pids[@]} -ge 2 ]; then
        wait "${pids[0]}"
        pids=("${pids[@]:1}")
    fi
done
wait

failed=0
printf '%-12s %10s %6s %7s %6s  %s\n' harness execs cov ft time result
for bin in "$@"; do
    name=$(basename "$bin")
    name=${name#fuzz_}
    log="$work/$name.log"
    rc=$(cat "$work/$name.rc")
    execs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -1)
    cov=$(awk '{print $2}' <<<"$last")
    ft=$(awk '{print $4}' <<<"$last")
    result=ok
    if [ "$rc" != 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY:' "$log"; then
        result="FAILED (status $rc): $(grep -m1 -E 'ERROR:|runtime error:|fuzz:' "$log" | cut -c1-90)"
        failed=1
    fi
    printf '%-12s %10s %6s %7s %5ss  %s\n' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
        "$(cat "$work/$name.time")" "$result"
    if [ "$result" != ok ]; then
        ls "$work/$name-artifacts/" | sed "s|^|    artifact: $work/$name-artifacts/|"
        grep -A12 -m1 -E 'ERROR:|runtime error:|fuzz:' "$log" | sed 's/^/    /' | head -14
    fi
done
[ $failed = 0 ] && echo "check-fuzz: all harnesses clean" || echo "check-fuzz: FAILED (logs in $work)"
exit $failed
