#!/usr/bin/env bash
# The CycleGAN with domains on separate ranks: 1 rank = 2 ranks = 4 ranks,
# determinism, resume (also onto another rank count), outputs, refusals.
set -u
source "$(dirname "$0")/lib.sh"
ensure_data
DIFF="$BIN/ckpt_diff"
T="$WORK/cyclegan"
mkdir -p "$T"
common=(--data "$DATA" --threads 1 --batch 32)
N=12 # steps of the runs compared (after a first step the bits of all that follows are at stake)
# 1 rank runs the four networks in the order 2 ranks run them: the same
# arithmetic, so the same bits; 4 ranks share each domain's batch over 2 ranks
# and add every image's gradient terms in the batch's order: the same bits
# again (t_exact.sh runs longer, on 8 ranks too)
for np in 1 2; do
    run_np $np cyclegan "${common[@]}" --max-steps $N --out "$T/np$np" >"$T/np$np.log" 2>&1 \
        || fail "$N steps on $np rank(s) ran (see $T/np$np.log)"
done
check "1 rank and 2 ranks (A and B apart): bit-identical after $N steps" \
    "$DIFF" "$T/np1/checkpoint.h5" "$T/np2/checkpoint.h5" 0
for np in 2 4; do
    run_np $np cyclegan "${common[@]}" --max-steps 1 --out "$T/first$np" >/dev/null 2>&1 || fail "a step on $np ranks"
done
identical "$T/first2/checkpoint.h5" "$T/first4/checkpoint.h5" "first step, 2 vs 4 ranks"
run_np 2 cyclegan "${common[@]}" --max-steps $N --out "$T/again" >/dev/null 2>&1
check "the same run twice is bit-identical" "$DIFF" "$T/np2/checkpoint.h5" "$T/again/checkpoint.h5" 0
# the product kernels' AVX2 path (and, where the CPU has none, the scalar one)
# gives the bits of the fastest path: a CPU without AVX-512 trains the same model
DTRAIN_GEMM=avx2 run_np 2 cyclegan "${common[@]}" --max-steps $N --out "$T/avx2" >"$T/avx2.log" 2>&1
check "products on the AVX2 path ($(sed -n 's/.*products \([^,]*\),.*/\1/p' "$T/avx2.log" | head -1)): bit-identical to the default's ($(sed -n 's/.*products \([^,]*\),.*/\1/p' "$T/np2.log" | head -1))" \
    "$DIFF" "$T/np2/checkpoint.h5" "$T/avx2/checkpoint.h5" 0
run_np 2 cyclegan "${common[@]}" --max-steps 5 --out "$T/cut" >/dev/null 2>&1
run_np 2 cyclegan "${common[@]}" --max-steps $N --out "$T/cut" --resume "$T/cut/checkpoint.h5" >/dev/null 2>&1
check "interrupted at step 5 and resumed equals the uninterrupted run bit for bit" \
    "$DIFF" "$T/np2/checkpoint.h5" "$T/cut/checkpoint.h5" 0
for np in 2 4; do one_more_step "$T/np2/checkpoint.h5" $np "$T/s13-$np" cyclegan "${common[@]}"; done
identical "$T/s13-2/checkpoint.h5" "$T/s13-4/checkpoint.h5" "saved on 2 ranks, step 13 on 4 vs on 2"
# the recipe's knobs keep every invariant: instance and color noise and swapped
# negatives keyed by position in the global batch, a late generator start,
# rates that change with the epoch (the color search apart, below)
knobs=(--d-noise 0.2 --color-noise 0.3 --swap-neg 1 --color-search 0 --g-delay 3 --lr-d 4e-4 --lr-decay-from 1
    --color-pair 30 --adv-ramp 0.1 --epochs 3)
for np in 1 2; do
    run_np $np cyclegan "${common[@]}" "${knobs[@]}" --max-steps $N --out "$T/k$np" >"$T/k$np.log" 2>&1 \
        || fail "$N steps with the recipe's knobs on $np rank(s) ran (see $T/k$np.log)"
done
check "with the recipe's knobs: 1 and 2 ranks bit-identical" \
    "$DIFF" "$T/k1/checkpoint.h5" "$T/k2/checkpoint.h5" 0
for np in 2 4; do one_more_step "$T/k2/checkpoint.h5" $np "$T/k13-$np" cyclegan "${common[@]}" "${knobs[@]}"; done
identical "$T/k13-2/checkpoint.h5" "$T/k13-4/checkpoint.h5" "with the recipe's knobs: step 13 on 4 vs on 2 ranks"
for knob in d-noise color-noise g-delay color-pair color-pair-focus adv-ramp gen-init-gain gen-ema; do
    run_np 2 cyclegan "${common[@]}" "${knobs[@]}" --$knob 0 --max-steps $N --out "$T/k2-$knob" >/dev/null 2>&1
    check "--$knob changes the training (it is not a no-op)" \
        bash -c "! '$DIFF' '$T/k2/checkpoint.h5' '$T/k2-$knob/checkpoint.h5' 1e-4 >/dev/null"
done
run_np 2 cyclegan "${common[@]}" "${knobs[@]}" --max-steps 5 --out "$T/kcut" >/dev/null 2>&1
run_np 2 cyclegan "${common[@]}" "${knobs[@]}" --max-steps $N --out "$T/kcut" --resume "$T/kcut/checkpoint.h5" \
    >/dev/null 2>&1
check "with the recipe's knobs: interrupted and resumed equals uninterrupted bit for bit" \
    "$DIFF" "$T/k2/checkpoint.h5" "$T/kcut/checkpoint.h5" 0
# choices with exact ties or near-ties: the recolor output's max over channels
# ties exactly on white digits, and the color search picks the best of a few
# discriminator scores, so other rank counts (other summation orders) drift
# apart faster; 1 and 2 ranks do the same arithmetic
for np in 1 2; do
    run_np $np cyclegan "${common[@]}" "${knobs[@]}" --gen-out recolor --max-steps $N --out "$T/rc$np" >/dev/null 2>&1
    run_np $np cyclegan "${common[@]}" "${knobs[@]}" --color-search 2 --max-steps $N --out "$T/cs$np" >/dev/null 2>&1
done
check "recolor: 1 and 2 ranks bit-identical" "$DIFF" "$T/rc1/checkpoint.h5" "$T/rc2/checkpoint.h5" 0
check "color search: 1 and 2 ranks bit-identical" "$DIFF" "$T/cs1/checkpoint.h5" "$T/cs2/checkpoint.h5" 0
check "--color-search changes the training (it is not a no-op)" \
    bash -c "! '$DIFF' '$T/k2/checkpoint.h5' '$T/cs2/checkpoint.h5' 1e-4 >/dev/null"
run_np 2 cyclegan "${common[@]}" --epochs 1 --out "$T/epoch" >"$T/epoch.log" 2>&1 || fail "one epoch on 2 ranks"
# the pairing found without labels is the data's: A's palette[d] goes to B's palette[(d + 3) mod 10]
check "the color pairing found from the images is the data set's mapping" python3 - "$T/epoch.log" <<'PY'
import re, sys
pal = ["ff0000", "00ff00", "0000ff", "ffff00", "ff00ff", "00ffff", "ff8000", "8000ff", "80ff00", "ffffff"]
line = next(l for l in open(sys.argv[1]) if "color pairing A>B" in l)
pairs = re.findall(r"#([0-9a-f]{6})>#([0-9a-f]{6})", line)
assert len(pairs) == 10, line
for a, b in pairs:
    assert pal[(pal.index(a) + 3) % 10] == b, (a, b)
PY
check "metrics.csv has the label-free health columns, in range" python3 - "$T/epoch/metrics.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 1
for k in "hist_tv_ab hist_tv_ba pair_agree_ab pair_agree_ba".split():
    assert 0 <= float(rows[0][k]) <= 1, k
PY
for f in metrics.csv summary.json checkpoint.h5 translations.png losses.png color_accuracy.png; do
    check "cyclegan leaves $f" test -s "$T/epoch/$f"
done
check "summary.json has every key" python3 - "$T/epoch/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for k in ("color_acc_ab color_acc_ba shape_ab shape_ba hist_tv_ab hist_tv_ba pair_agree_ab pair_agree_ba "
          "images_per_s wall_s ranks epochs seed version").split():
    assert k in s, k
assert s["ranks"] == 2 and 0 <= s["color_acc_ab"] <= 1 and -1 <= s["shape_ab"] <= 1
PY
expect_error 3 "an odd rank count above 1" cyclegan "${common[@]}" --out "$T/o"
run_np 1 vae --data "$DATA" --threads 1 --max-steps 2 --out "$T/vae" >/dev/null 2>&1
expect_error 2 "a VAE checkpoint given to cyclegan --resume" cyclegan "${common[@]}" --out "$T/o" \
    --resume "$T/vae/checkpoint.h5"
expect_error 1 "a data file without the CycleGAN sets" cyclegan --data "$T/np1/checkpoint.h5" --out "$T/o"
expect_error 1 "an unknown generator output" cyclegan "${common[@]}" --gen-out linear --out "$T/o"
echo "counts $PASSED $FAILED"
