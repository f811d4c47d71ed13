#!/usr/bin/env bash
# The CUDA path in one short call on a GPU machine: correctness first, then speed.
#
#   OUT=gpu_out bash benchmarks/gpu_check.sh
#
# Writes eight files under $OUT (the device tool returns at most eight): machine.txt,
# pytest.txt, solve.txt, speed.md, speed.log, speed4096.json, speed65536.json and status.txt
# (each part's exit status; 124 = its time limit). Each part has its
# own time limit (about 490 s in all), so that a slow part cannot eat the others. Where
# .whl/ holds wheels (DeepXDE 1.15 with scikit-optimize and pyaml: the GPU machine has no
# package index), they are installed to /tmp/site for the DeepXDE rows. Results and the card
# are recorded in benchmarks/README.md ("GPU").
set -u -o pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  nproc
} 2>&1 | tee "$OUT/machine.txt"

if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
"$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # in case the editable install failed

echo "== pytest tests/run/test_cuda.py"
timeout -k 5 150 "$PY" -m pytest -q -p no:cacheprovider tests/run/test_cuda.py 2>&1 \
  | tee "$OUT/pytest.txt" | tail -8
echo "pytest ${PIPESTATUS[0]}" >>"$OUT/status.txt"

echo "== solve poisson1d_multiscale on cuda (shipped defaults, seed 0)"
rm -rf /tmp/gpu_run
timeout -k 5 90 "$PY" -m mscalepde solve problems/poisson1d_multiscale.yaml --device cuda \
  --out /tmp/gpu_run 2>&1 | tee "$OUT/solve.txt" | grep -E "relative L2|seconds|compile" | tail -5
echo "solve ${PIPESTATUS[0]}" >>"$OUT/status.txt"
[ -f /tmp/gpu_run/summary.json ] && "$PY" - <<'EOF' 2>&1 | tee -a "$OUT/solve.txt"
import csv, json
s = json.load(open("/tmp/gpu_run/summary.json"))
rows = list(csv.DictReader(open("/tmp/gpu_run/history.csv")))
hit = next((float(r["time"]) for r in rows if float(r["rel_l2"]) <= 1e-3), None)
print("summary:", {k: s.get(k) for k in ("device", "rel_l2", "train_seconds", "wall_seconds", "compiled", "steps")})
print("train seconds to rel L2 <= 1e-3 (logged rows):", hit)
EOF

for n in 4096 65536; do
  echo "== speed.py --device cuda --points $n"
  problems=poisson1d,poisson2d,heat1d
  [ "$n" = 65536 ] && problems=poisson2d
  limit=180
  [ "$n" = 65536 ] && limit=70
  # timeout signals its whole process group (the DeepXDE worker too); -k 5 follows with KILL
  timeout -k 5 "$limit" "$PY" benchmarks/speed.py --device cuda --archs mlp --problems "$problems" \
    --engines forward,forward+compile,autograd,deepxde \
    --points "$n" --repeats 3 --min-seconds 1 --markdown --out "$OUT/speed$n.json" \
    >"$OUT/speed$n.part" 2>>"$OUT/speed.log"
  echo "speed$n $?" >>"$OUT/status.txt"
  cat "$OUT/speed$n.part" | tee -a "$OUT/speed.md"
  rm -f "$OUT/speed$n.part"
done
cat "$OUT/status.txt"
