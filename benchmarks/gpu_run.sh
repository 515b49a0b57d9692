#!/usr/bin/env bash
# A short GPU run for issue 3: data-loader throughput with synthesis on, UNet prediction speed on a
# 512x512x150 CT, ~5 minutes of training on synthetic liver tumors in the healthy scans (IRCAD 1.7
# and the TotalSegmentator example), prediction on IRCAD 1.17 and evaluation against its two real
# tumors. Run on the lent GPU machine from the repository root with .gpu/ prepared by
# benchmarks/prepare_gpu_data.py (carry it); results go to $OUT (or ./gpu_out).
set -uo pipefail
OUT="${OUT:-gpu_out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# Knobs for a CPU dry run: PY, DEV (cuda), LOADER_WORKERS (8), NUM_WORKERS (12), TRAIN_MINUTES (5).
PY="${PY:-python3}"; DEV="${DEV:-cuda}"
if [ -d .gpu/whl ] && [ "${SKIP_WHEELS:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
  export PYTHONPATH="$PWD/src:/tmp/site"
fi
(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU") | tee "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"

$PY benchmarks/bench_training.py loader --healthy .gpu/data/Dataset001_P07:tumorsynth \
    .gpu/data/Dataset002_TS:totalsegmentator --workers ${LOADER_WORKERS:-8} --batches ${LOADER_BATCHES:-60} > "$OUT/loader8.json" 2> "$OUT/loader.err"
tail -3 "$OUT/loader.err"; cat "$OUT/loader8.json"
$PY benchmarks/bench_training.py predict-speed --device $DEV --repeats ${SPEED_REPEATS:-3} > "$OUT/predict_speed.json" 2>/dev/null
cat "$OUT/predict_speed.json"

cat > "$OUT/train.yaml" <<YAML
name: gpu_unet_synthetic_liver
seed: 0
data:
  mode: synthetic
  organ: liver
  healthy:
    - {path: .gpu/data/Dataset001_P07, label_map: tumorsynth}
    - {path: .gpu/data/Dataset002_TS, label_map: totalsegmentator}
  val_fraction: 0.0
  spacing_mm: [1.5, 1.5, 1.5]
  tumor_size: mixed
  num_workers: ${NUM_WORKERS:-12}
  samples_per_case: 2
model: {backbone: unet}
optim: {lr: 3.0e-4, max_steps: 100000, batch_size: 4, warmup_steps: 100}
train: {out_dir: $OUT/run, checkpoint_every: 1000, log_every: 25, max_minutes: ${TRAIN_MINUTES:-5}}
YAML
$PY -m tumorsynth.cli.main train --config "$OUT/train.yaml" --no-progress 2>&1 | grep -v -i warn | tail -3
$PY -m tumorsynth.cli.main predict --checkpoint "$OUT/run/checkpoints/last" --input .gpu/data/test \
    --out "$OUT/pred" --device $DEV --overlap 0.5 --no-progress 2>&1 | grep -v -i warn | tail -2
$PY -m tumorsynth.cli.main evaluate --pred "$OUT/pred" --gt .gpu/data/test_labels --label-map lits \
    --pred-label-map tumorsynth --organ liver --out "$OUT/eval" 2>&1 | grep -v -i warn | tail -12
cp "$OUT/run/metrics.csv" "$OUT/run/summary.json" "$OUT/" 2>/dev/null
cp "$OUT/eval/report.json" "$OUT/eval_report.json" 2>/dev/null
cp "$OUT/pred/p17.nii.gz" "$OUT/p17_pred.nii.gz" 2>/dev/null
rm -rf "$OUT/run" "$OUT/pred" "$OUT/eval" "$OUT/loader.err"
ls -la "$OUT"
