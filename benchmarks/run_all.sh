#!/usr/bin/env bash
# Every benchmark in sequence with its defaults. Usage: bash benchmarks/run_all.sh [auto|cpu|cuda] [JSON_DIR]
# With JSON_DIR, each new benchmark also writes JSON_DIR/<name>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${1:-auto}"
JSON_DIR="${2:-}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
[ -n "$JSON_DIR" ] && mkdir -p "$JSON_DIR"

for name in masking inference training memory; do
    echo "=== bench_$name ==="
    extra=()
    [ -n "$JSON_DIR" ] && extra=(--json "$JSON_DIR/$name.json")
    "$PYTHON" "benchmarks/bench_$name.py" --device "$DEVICE" "${extra[@]}"
    echo
done

# The older benchmarks take a concrete device name.
EXPLAINER_DEVICE="$DEVICE"
if [ "$DEVICE" = auto ]; then
    EXPLAINER_DEVICE=$("$PYTHON" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
fi
echo "=== bench_explainers ==="
"$PYTHON" benchmarks/bench_explainers.py --device "$EXPLAINER_DEVICE"
echo
echo "=== bench_metrics ==="
"$PYTHON" benchmarks/bench_metrics.py
echo
echo "=== bench_ebayesthresh ==="
"$PYTHON" benchmarks/bench_ebayesthresh.py
