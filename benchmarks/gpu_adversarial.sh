#!/usr/bin/env bash
# The adversarial generator's and the quality filter's GPU numbers (issue 12), in one device run
# of at most 10 minutes: ms per tumor of the generator at 64^3 and of the filter (the default
# segmentor at 96^3), batch 1, 16 and 32, bf16 and fp32, peak GPU memory, and training steps/s.
# Run from the repository root on the lent GPU machine (carry .gpu/ from
# benchmarks/prepare_gpu_data.py when its Python lacks the wheels); output goes to $OUT.
source "$(dirname "$0")/gpu_env.sh"
$PY benchmarks/bench_adversarial.py --device "${DEV:-cuda}" --crop 64 --filter-cube 96 \
    --batch 1 16 32 --repeats 3 --train-batch 4 --train-steps 40 --budget-s "${BUDGET_S:-420}" \
    | tee "$OUT/bench_adversarial.md"
