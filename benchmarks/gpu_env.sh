# Sourced by the gpu_*.sh benchmark runs: output folder ($OUT), Python ($PY), the wheels carried in
# .gpu/whl (from benchmarks/prepare_gpu_data.py) when the device's Python lacks them, and the card.
set -uo pipefail
OUT="${OUT:-gpu_out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PY:-python3}"
if [ -d .gpu/whl ] && [ "${SKIP_WHEELS:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
  export PYTHONPATH="$PWD/src:/tmp/site"
fi
(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU") | tee "$OUT/gpu.txt"
