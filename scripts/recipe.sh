#!/usr/bin/env bash
# From a folder of labelled text to a verified phone bundle, with this project's commands:
#   1. fine-tune a teacher                 python -m distill.finetune
#   2. label with augmentation             python -m distill.label --augment tang
#   3. search under a budget, retrain best python -m search.run --max-size-mb / --max-latency-ms
#   3b. with --embedding-rank R: factor the student's embedding table offline (no training)
#                                          python -m distill.compress
#   4. export (ONNX, int8)                 python -m distill.export
#   5. verify the bundle on dev            python -m distill.predict (onnxruntime + tokenizers, no torch)
# Not here yet: an export that keeps int8 for its size when it runs slower than fp32 (distill.export
# then ships fp32, and step 5 stops if that breaks a size budget), and vocabulary pruning inside the
# search (search.run has no --prune-vocab; distill.train has).
#
#   scripts/recipe.sh --model ./encoder --data ./tickets --text-column body --label-column queue \
#       --max-size-mb 5 --trials 30 --out runs/tickets
#   scripts/recipe.sh --model bert-base-uncased --data ./glue/SST-2 --task sst2 --max-latency-ms 1
#
# Each command is printed before it runs. Rerun the same line to resume: the fine-tuning resumes or
# is reused, an identical label set is reused, the search continues its study and keeps a finished
# retrain; the export is redone. Extra flags for one step: --finetune-args "...", --label-args "...",
# --search-args "...", --export-args "..." (quoted, split on spaces).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # the commands run from any folder, on a checkout too

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; cat <<'EOF'

flags (defaults in brackets):
  --model M            encoder to fine-tune: hub id or local save_pretrained folder (required)
  --data DIR           folder with train and dev files (required)
  --task NAME          GLUE task name, or a name for custom data [the data folder's name]
  --text-column C      text column of custom data
  --text-pair-column C second text column (sentence pairs)
  --label-column C     label column of custom data
  --out DIR            where everything goes [runs/recipe-<task>]
  --max-size-mb X      size budget of the student, at --precision [5, unless --max-latency-ms is given]
  --max-latency-ms X   latency budget: median ms at batch 1 on this CPU, 1 thread
  --precision P        int8 (exported quantized) or fp32 [int8]
  --students S         students to search, comma-separated [bilstm,cnn,transformer]
  --trials N           search trials [30]
  --augment-copies N   augmented copies per training example, 0 = none [10]
  --embedding-rank R   factor the searched student's embedding table at rank R before export
                       (distill.compress, --compress-method svd|autoencoder) [no compression]
  --compress-method M  svd or autoencoder [autoencoder]
  --threads N          CPU threads for every step [torch's default]
EOF
}

die() { echo "error: $*" >&2; exit 2; }
run() { echo; echo "== $(printf "%q " "$@")"; "$@"; }  # printed quoted: it runs as printed

MODEL="" DATA="" TASK="" TEXT="" PAIR="" LABEL="" OUT="" SIZE="" LATENCY="" PRECISION="int8"
STUDENTS="bilstm,cnn,transformer" TRIALS=30 COPIES=10 THREADS="" RANK="" METHOD="autoencoder"
FT_ARGS="" LABEL_ARGS="" SEARCH_ARGS="" EXPORT_ARGS=""
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || { [ "$1" = "-h" ] || [ "$1" = "--help" ]; } || die "$1 needs a value; see --help"
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --model) MODEL="$2" ;;
        --data) DATA="$2" ;;
        --task) TASK="$2" ;;
        --text-column) TEXT="$2" ;;
        --text-pair-column) PAIR="$2" ;;
        --label-column) LABEL="$2" ;;
        --out) OUT="$2" ;;
        --max-size-mb) SIZE="$2" ;;
        --max-latency-ms) LATENCY="$2" ;;
        --precision) PRECISION="$2" ;;
        --students) STUDENTS="$2" ;;
        --trials) TRIALS="$2" ;;
        --augment-copies) COPIES="$2" ;;
        --threads) THREADS="$2" ;;
        --embedding-rank) RANK="$2" ;;
        --compress-method) METHOD="$2" ;;
        --finetune-args) FT_ARGS="$2" ;;
        --label-args) LABEL_ARGS="$2" ;;
        --search-args) SEARCH_ARGS="$2" ;;
        --export-args) EXPORT_ARGS="$2" ;;
        *) die "unknown flag $1; see --help" ;;
    esac
    shift 2
done
[ -n "$MODEL" ] || die "--model is required: the encoder to fine-tune (hub id or local folder)"
[ -n "$DATA" ] || die "--data is required: a folder with train and dev files"
[ -d "$DATA" ] || die "--data $DATA: no such folder"
case "$PRECISION" in int8|fp32) ;; *) die "--precision $PRECISION: choose int8 or fp32" ;; esac
[ -n "$SIZE$LATENCY" ] || SIZE=5
TASK="${TASK:-$(basename "$(cd "$DATA" && pwd)")}"
# the folder's name as it is: distill.data keeps a custom task's name (GLUE names match in any case)
OUT="${OUT:-runs/recipe-${TASK//[^A-Za-z0-9._-]/_}}"

# flags that every step that reads the data shares
DATA_FLAGS=(--task "$TASK" --data "$DATA")
[ -n "$TEXT" ] && DATA_FLAGS+=(--text-column "$TEXT")
[ -n "$PAIR" ] && DATA_FLAGS+=(--text-pair-column "$PAIR")
[ -n "$LABEL" ] && DATA_FLAGS+=(--label-column "$LABEL")
THREAD_FLAGS=()
[ -n "$THREADS" ] && THREAD_FLAGS=(--threads "$THREADS")
read -r -a FT_EXTRA <<< "$FT_ARGS"
read -r -a LABEL_EXTRA <<< "$LABEL_ARGS"
read -r -a SEARCH_EXTRA <<< "$SEARCH_ARGS"
read -r -a EXPORT_EXTRA <<< "$EXPORT_ARGS"

# 1. fine-tune the teacher (resumed or reused on a rerun)
run "$PY" -m distill.finetune --model "$MODEL" "${DATA_FLAGS[@]}" --output-dir "$OUT/teacher" --resume \
    "${THREAD_FLAGS[@]}" "${FT_EXTRA[@]}"
MAX_LENGTH="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_length"])' "$OUT/teacher/finetune.json")"

# 2. the teacher labels the training data and augmented copies of it (reused when nothing changed)
AUGMENT=(--augment none)
[ "$COPIES" -gt 0 ] && AUGMENT=(--augment tang --augment-copies "$COPIES")
run "$PY" -m distill.label --teacher "$OUT/teacher" "${DATA_FLAGS[@]}" --max-length "$MAX_LENGTH" \
    "${AUGMENT[@]}" --output-dir "$OUT/labels" "${THREAD_FLAGS[@]}" "${LABEL_EXTRA[@]}"

# 3. search the students under the budget; the best feasible one is retrained on every row
#    (one study per student set and budget: a rerun with another budget starts its own, reusing 1 and 2)
BUDGET=()
SEARCH="$OUT/search-${STUDENTS//,/+}"
[ -n "$SIZE" ] && BUDGET+=(--max-size-mb "$SIZE" --precision "$PRECISION") && SEARCH+="-${SIZE}mb-$PRECISION"
[ -n "$LATENCY" ] && BUDGET+=(--max-latency-ms "$LATENCY") && SEARCH+="-${LATENCY}ms"
run "$PY" -m search.run --student "$STUDENTS" --labels "$OUT/labels" "${BUDGET[@]}" --trials "$TRIALS" \
    --retrain 1 --output-dir "$SEARCH" "${THREAD_FLAGS[@]}" "${SEARCH_EXTRA[@]}"
BEST="$("$PY" - "$SEARCH/summary.json" <<'EOF'
import json, sys
retrained = json.load(open(sys.argv[1])).get("retrained") or []
print(retrained[0]["run_dir"] if retrained else "")
EOF
)"
[ -n "$BEST" ] || die "the search found no student within the budget; loosen it or run more --trials"

# 3b. optionally factor its embedding table (no training; the compressed run reports its drop)
if [ -n "$RANK" ]; then
    run "$PY" -m distill.compress "$BEST" --embedding-rank "$RANK" --method "$METHOD" \
        --output-dir "$OUT/compressed-$METHOD-r$RANK" --overwrite "${THREAD_FLAGS[@]}"
    BEST="$OUT/compressed-$METHOD-r$RANK"
fi

# 4. export the student as an ONNX bundle (parity-checked on dev); int8 under a size budget is kept
#    for its size even if slower (--keep-int8 always), else only when it is not slower
QUANTIZE=()
[ "$PRECISION" = int8 ] && QUANTIZE=(--quantize int8)
[ "$PRECISION" = int8 ] && [ -n "$SIZE" ] && QUANTIZE+=(--keep-int8 always)
run "$PY" -m distill.export "$BEST" --format onnx "${QUANTIZE[@]}" --output-dir "$OUT/bundle" --overwrite \
    "${EXPORT_EXTRA[@]}"

# 5. verify: the bundle alone (distill.predict) classifies the dev set; compare with the export's own
#    figure and the budget
echo
echo "== verifying $OUT/bundle with python -m distill.predict on the dev set"
"$PY" - "$OUT" "$SIZE" "$THREADS" <<'EOF'
import json, subprocess, sys
from pathlib import Path

import numpy as np

from distill.data.metrics import compute_metric
from distill.teacher.labelset import LabelSet

out, size_budget, threads = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ls = LabelSet.load(out / "labels")
dev = ls.splits["dev"]
lines = "\n".join("\t".join(t) for t in dev.texts) + "\n"
cmd = [sys.executable, "-m", "distill.predict", str(out / "bundle"), "--json"] + (["--threads", threads] if threads else [])
res = subprocess.run(cmd, input=lines, capture_output=True, text=True)
if res.returncode:
    sys.exit(f"error: distill.predict failed: {res.stderr.strip().splitlines()[-1]}")
preds = [json.loads(x)["label"] for x in res.stdout.splitlines() if x.strip()]
names = list(ls.task.label_names)
has = dev.labels >= 0
pred = np.array([names.index(p) for p in preds])
metric = compute_metric(ls.task.metric, pred[has], dev.labels[has])
meta = json.loads((out / "bundle" / "metadata.json").read_text())
par, mb = meta["parity"], meta["model_bytes"] / 1e6
teacher = json.loads((out / "teacher" / "finetune.json").read_text())
print(f"teacher: dev {ls.task.metric} {100 * teacher['dev_metric']:.2f} ({out / 'teacher'})")
print(f"bundle:  dev {ls.task.metric} {100 * metric:.2f} by distill.predict on {len(preds)} rows "
      f"(the export's parity check: {100 * par['bundle_metric']:.2f}, PyTorch student "
      f"{100 * par['pytorch_metric']:.2f}); {meta['precision']}, {mb:.2f} MB ({out / 'bundle'})")
problems = []
if len(preds) != len(dev.texts):
    problems.append(f"distill.predict answered {len(preds)} of {len(dev.texts)} texts")
elif par["rows"] == len(dev.texts) and abs(metric - par["bundle_metric"]) > 0.005:
    problems.append("distill.predict's dev metric differs from the export's parity check by more than 0.5 points")
if size_budget and mb > float(size_budget):
    q, why = meta.get("quantization") or {}, ""
    if q.get("requested") == "int8" and not q.get("kept"):
        why = (f"; distill.export did not keep int8 ({q.get('reason')}; int8 would be "
               f"{q.get('int8_bytes', 0) / 1e6:.2f} MB), and it has no option yet to keep int8 for its size "
               "(not built: a size-first export), so this recipe stops here")
    problems.append(f"the bundle is {mb:.2f} MB ({meta['precision']}), over the {size_budget} MB budget{why}")
if problems:
    sys.exit("error: " + "; ".join(problems))
print(f"verified: {out / 'bundle'} runs without torch and scores as exported"
      + (f", within {size_budget} MB" if size_budget else ""))
EOF
