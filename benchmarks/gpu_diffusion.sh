#!/usr/bin/env bash
# The learned generator's GPU numbers (issue 11), in one device run of at most 10 minutes:
# ms per tumor at 96^3 for 4 and 50 DDIM steps, batch 1, 16 and 32, bf16 and fp32, peak GPU
# memory, training steps/s of the autoencoder and the denoiser, and the synthesize pipeline.
# Run from the repository root on the lent GPU machine (carry .gpu/ from
# benchmarks/prepare_gpu_data.py when its Python lacks the wheels); output goes to $OUT.
source "$(dirname "$0")/gpu_env.sh"
$PY benchmarks/bench_diffusion.py --device "${DEV:-cuda}" --crop 96 --steps 4 50 --batch 1 16 32 \
    --repeats 3 --train-batch 2 --train-steps 20 --pipeline-tumors 8 --budget-s "${BUDGET_S:-420}" \
    | tee "$OUT/bench_diffusion.md"
