#!/usr/bin/env bash
# Issue 13's GPU numbers ("Scale") in one device run of about 8 minutes (TOTAL_S), each step under
# its own time limit so that a failing or slow step leaves the others their time:
#   1. data wait in training: `tumorsynth train` (synthetic mode, online synthesis, cached organ
#      analysis, default UNet, batch 4) on the carried healthy scans with 16 loader workers:
#      crops/s and the share of step time spent waiting for data (target < 20%);
#   2. Dask batch synthesis, cases/s with 1, 2 and 16 workers (bench_dask.py);
#   3. prediction memory on the GPU path, 512 x 512 x 900 CT (bench_predict_memory.py --device):
#      peak RSS and torch.cuda.max_memory_allocated (target: at most 4x the image plus the model);
#   4. the scaling study's smallest grid on the GPU (scaling_shared.py --device, a time budget);
#   5. step 1 again with 8 workers, for comparison, when time is left.
# Markdown goes to stdout and $OUT/gpu_scale.md; the training metrics logs, the scaling CSV and
# every step's stderr tail ($OUT/steps.err) come back too. Run from the repository root on the
# lent GPU machine with .gpu/ from `benchmarks/prepare_gpu_data.py --wheels` carried:
#   run(command="bash benchmarks/gpu_scale.sh", carry=[".gpu"], timeout_s=560)
# CPU dry run (plumbing only): DEV=cpu SKIP_WHEELS=1 PY=.venv/bin/python OUT=/tmp/gpu_scale_dry
#   QUICK=1 bash benchmarks/gpu_scale.sh   (QUICK=1 sets tiny knobs; each knob below can be set).
source "$(dirname "$0")/gpu_env.sh"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DEV="${DEV:-cuda}"
if [ "${QUICK:-0}" = 1 ]; then  # tiny knobs for a CPU dry run; numbers mean nothing
  : "${TOTAL_S:=300}" "${WORKERS:=2}" "${EXTRA_WORKERS:=1}" "${TRAIN_STEPS:=4}" "${LOG_EVERY:=2}"
  [ -n "${MODEL:-}" ] || MODEL='{backbone: unet, channels: [8, 16, 32]}'
  : "${DASK_WORKERS:=1 2}" "${DASK_CASES:=4}"
  : "${DASK_REPEATS:=1}" "${PM_SHAPE:=160 160 60}" "${PM_MODEL:=tiny}" "${SC_STEPS:=2}"
  : "${SC_COUNTS:=2}" "${SC_WORKERS:=0}" "${SC_BUDGET:=40}"
fi
TOTAL_S="${TOTAL_S:-470}"             # the whole run; steps are cut to what is left of it
WORKERS="${WORKERS:-16}"              # loader workers of the training run (step 1)
EXTRA_WORKERS="${EXTRA_WORKERS:-8}"   # the comparison run (step 5); 0: none
TRAIN_MINUTES="${TRAIN_MINUTES:-1.0}" TRAIN_STEPS="${TRAIN_STEPS:-100000}"
LOG_EVERY="${LOG_EVERY:-10}" BATCH="${BATCH:-4}"
[ -n "${MODEL:-}" ] || MODEL='{backbone: unet}'   # a YAML mapping: the default UNet
DASK_WORKERS="${DASK_WORKERS:-1 2 16}" DASK_CASES="${DASK_CASES:-64}" DASK_REPEATS="${DASK_REPEATS:-2}"
PM_SHAPE="${PM_SHAPE:-512 512 900}" PM_MODEL="${PM_MODEL:-default}"
SC_STEPS="${SC_STEPS:-60}" SC_COUNTS="${SC_COUNTS:-0 2}" SC_SEEDS="${SC_SEEDS:-0}"
SC_WORKERS="${SC_WORKERS:-4}" SC_BUDGET="${SC_BUDGET:-75}"
WORK="${WORK:-/tmp/gpu_scale_work}"; rm -rf "$WORK"; mkdir -p "$WORK"
MD="$OUT/gpu_scale.md"; : > "$MD"; : > "$OUT/steps.err"
STATUS=()

say() { printf '%s\n' "$*" | tee -a "$MD"; }
left() { echo $((TOTAL_S - SECONDS)); }

# step NAME LIMIT_S COMMAND...: run under min(LIMIT_S, time left), stdout to the report, stderr
# to $WORK/NAME.err (its tail printed when the step fails, and kept in $OUT/steps.err).
step() {
  local name=$1 limit=$2; shift 2
  local budget; budget=$(left)
  ((budget < limit)) && limit=$budget
  if ((limit < 20)); then
    say "(step $name skipped: ${budget} s left of TOTAL_S=$TOTAL_S)"; STATUS+=("$name: skipped"); return 99
  fi
  local start=$SECONDS rc
  timeout -k 10 "$limit" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"; rc=$?
  cat "$WORK/$name.out" | tee -a "$MD"
  { echo "=== $name: rc $rc, $((SECONDS - start)) s (limit $limit s)"; tail -n 25 "$WORK/$name.err"; } >> "$OUT/steps.err"
  if ((rc != 0)); then
    say ""; say "**step $name failed: rc $rc$( ((rc == 124 || rc == 137)) && echo ", out of its $limit s")**"
    say '```'; tail -n 15 "$WORK/$name.err" | tee -a "$MD"; say '```'
  fi
  STATUS+=("$name: rc $rc, $((SECONDS - start)) s")
  return $rc
}

say "# Issue 13 on the GPU machine ($(date -u +%F), $(head -1 "$OUT/gpu.txt"), $(nproc) CPUs)"
say ""
say "$($PY -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")' 2>&1 | tail -1)"

# --- 1 and 5: data wait in training ----------------------------------------------------------
train_run() {  # train_run WORKERS MINUTES: a short training, then its metrics as a table row
  local n=$1 minutes=$2 run="$WORK/train_w$1"
  cat > "$WORK/train_w$n.yaml" <<YAML
name: gpu_scale_w$n
seed: 0
data:
  mode: synthetic
  organ: liver
  healthy:
    - {path: $PWD/.gpu/data/Dataset001_P07, label_map: tumorsynth}
    - {path: $PWD/.gpu/data/Dataset002_TS, label_map: totalsegmentator}
  val_fraction: 0.0
  spacing_mm: [1.5, 1.5, 1.5]
  tumor_size: mixed
  num_workers: $n
  samples_per_case: 2
  analysis_cache_dir: $WORK/analysis
model: $MODEL
optim: {lr: 3.0e-4, max_steps: $TRAIN_STEPS, batch_size: $BATCH, warmup_steps: 100}
train: {out_dir: $run, device: $DEV, checkpoint_every: 1000000, val_every: 1000000, log_every: $LOG_EVERY, max_minutes: $minutes}
YAML
  step "train_w$n" "$(awk -v m="$minutes" 'BEGIN { printf "%d", 60 * m + 90 }')" \
    $PY -m tumorsynth.cli.main train --config "$WORK/train_w$n.yaml" --no-progress
  cp "$run/metrics.csv" "$OUT/train_w$n.csv" 2>/dev/null
  say ""
  $PY - "$run" "$n" "$BATCH" <<'PY' 2>&1 | tee -a "$MD"
import csv, json, sys
from pathlib import Path

run, workers, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(
    "| loader workers | steps | wall (s) | crops/s | data wait / step time | crops/s, last 2/3 "
    "| data wait, last 2/3 | peak GPU GB | wait < 20%: whole run / last 2/3 |"
)
print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
try:
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r["crops_per_s"]]
except OSError as exc:
    sys.exit(f"| {workers} | no metrics.csv ({exc.strerror}) |")
summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
# each row holds totals since the start: crops/s = crops / wall, data share = data / (data +
# compute); wall (the same as data + compute, but for logging) gives each row's seconds
pts = [(int(r["step"]), float(r["crops_per_s"]), float(r["data_fraction"])) for r in rows]
wall = [s * batch / c for s, c, _ in pts]
last, total = pts[-1], wall[-1]
first = next((i for i, w in enumerate(wall) if w >= total / 3), 0)
if first < len(pts) - 1:  # the last two thirds: loader workers started, analyses cached
    dt = total - wall[first]
    rate = (last[0] - pts[first][0]) * batch / dt
    wait = (last[2] * total - pts[first][2] * wall[first]) / dt
    steady, met = f"{rate:.1f} | {100 * wait:.0f}%", "yes" if wait < 0.2 else "no"
else:
    steady, met = "- | -", "-"
gpu = rows[-1].get("gpu_mem_gb") or "-"
print(
    f"| {workers} | {last[0]} | {total:.0f} | {last[1]:.1f} | {100 * last[2]:.0f}% | {steady} "
    f"| {gpu} | {'yes' if last[2] < 0.2 else 'no'} / {met} |"
)
print(f"\n(summary.json: {summary.get('steps', '?')} steps, device {summary.get('device', '?')})")
PY
}

say ""; say "## 1. Data wait in training ($WORKERS loader workers, batch $BATCH, $TRAIN_MINUTES min)"; say ""
say "Synthetic mode on the carried IRCAD 1.7 crop and TotalSegmentator example at 1.5 mm, 96^3"
say "crops, mixed sizes, 2 crops per case, organ analysis cached on disk; model: $MODEL."
say "The whole-run columns come from the last metrics.csv row (start-up included); the last-2/3"
say "columns from the difference of two rows (wall clock standing in for data + compute time)."
say ""
train_run "$WORKERS" "$TRAIN_MINUTES"

# --- 2: Dask batch synthesis -----------------------------------------------------------------
say ""; say "## 2. Dask batch synthesis (bench_dask.py --workers $DASK_WORKERS --cases $DASK_CASES)"; say ""
# shellcheck disable=SC2086
step dask 150 $PY benchmarks/bench_dask.py --workers $DASK_WORKERS --cases "$DASK_CASES" \
  --per-case 2 --repeats "$DASK_REPEATS" --markdown

# --- 3: prediction memory on the GPU path ----------------------------------------------------
say ""; say "## 3. Prediction memory, $DEV ($PM_SHAPE, $PM_MODEL UNet, probabilities saved)"; say ""
# shellcheck disable=SC2086
step predict_memory 170 $PY benchmarks/bench_predict_memory.py --device "$DEV" --shape $PM_SHAPE \
  --model "$PM_MODEL" --save-probabilities

# --- 4: the scaling study's smallest grid ----------------------------------------------------
say ""; say "## 4. Scaling study on $DEV (real counts $SC_COUNTS, seeds $SC_SEEDS, $SC_STEPS steps, budget $SC_BUDGET s)"; say ""
say "scaling_shared.py on the carried crops (IRCAD 1.17's liver crop cut as on the CPU; 40^3 crops"
say "at 3 mm, not 48^3: the crop's pool part is 44 voxels wide), $SC_WORKERS loader workers."; say ""
# shellcheck disable=SC2086
step scaling "$((SC_BUDGET + 80))" $PY benchmarks/scaling_shared.py --gpu-data .gpu/data \
  --patch-size 40 --out "$WORK/scaling" --device "$DEV" --steps "$SC_STEPS" \
  --real-counts $SC_COUNTS --seeds $SC_SEEDS --num-workers "$SC_WORKERS" --budget-s "$SC_BUDGET"
cp "$WORK/scaling/study/scaling.csv" "$OUT/scaling.csv" 2>/dev/null

# --- 5: the comparison run, in what is left --------------------------------------------------
if ((EXTRA_WORKERS > 0)); then
  minutes=$(awk -v l="$(left)" -v m="$TRAIN_MINUTES" 'BEGIN { x = (l - 75) / 60; if (x > m) x = m; printf "%.2f", x }')
  say ""; say "## 5. Data wait with $EXTRA_WORKERS loader workers (for comparison)"; say ""
  if awk -v x="$minutes" 'BEGIN { exit !(x >= 0.4) }'; then
    say "As in 1, for $minutes min."
    train_run "$EXTRA_WORKERS" "$minutes"
  else
    say "(skipped: $(left) s left of TOTAL_S=$TOTAL_S)"; STATUS+=("train_w$EXTRA_WORKERS: skipped")
  fi
fi

say ""; say "## Steps"; say ""
for line in "${STATUS[@]}"; do say "- $line"; done
say "- total: $SECONDS s"
ls -la "$OUT"
