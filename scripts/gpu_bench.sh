#!/usr/bin/env bash
# The GPU rows of issue 12 in one device call of a few minutes (docs/performance.md, "GPU path").
#
#   bash scripts/gpu_bench.sh prepare    # here, once: the wheels the GPU machine lacks -> build/gpu-wheels
#   run: command "bash scripts/gpu_bench.sh", carry ["build/gpu-wheels"], timeout_s 420
#
# On the device (no network, no pip): the carried wheels (soundfile with its libsndfile, cffi,
# pycparser, soxr; python 3.12 manylinux) are unpacked into a scratch folder put on PYTHONPATH
# with this tree, then scripts/bench.py measures on cuda: the whole command on a 10-minute song,
# one command over a folder of ten 3-minute songs, Separator.separate on 300 s in-process (batch
# auto, 1 and 32), and the largest difference between CUDA's stems and the CPU's on a 20 s clip.
# Everything lands in $OUT: gpu_bench.json, gpu_bench.log, env.txt.
#
# Tiny CPU rehearsal: STEMCUT_GPU_DEVICE=cpu STEMCUT_GPU_ARGS="--song-minutes 0.05 --folder-songs 2
#   --folder-minutes 0.02 --in-process-seconds 2 --compare 2" OUT=/tmp/gpu-out bash scripts/gpu_bench.sh
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
fi
cd "$(dirname "$0")/.."
WHEELS=build/gpu-wheels
PY=${PYTHON:-python3}

if [ "${1:-}" = prepare ]; then
    "${PIP:-.venv/bin/pip}" download --only-binary=:all: --no-deps --python-version 3.12 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$WHEELS" soundfile cffi pycparser soxr
    exit 0
fi

DEVICE=${STEMCUT_GPU_DEVICE:-cuda}
OUT=${OUT:-build/gpu-out}
mkdir -p "$OUT"
SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
if ! "$PY" -c "import soundfile, soxr" 2>/dev/null; then
    [ -d "$WHEELS" ] || { echo "no $WHEELS: run 'bash scripts/gpu_bench.sh prepare' here and carry it" >&2; exit 2; }
    # A wheel is a zip: unpacked, its extension modules and bundled libraries load as installed.
    "$PY" - "$WHEELS" "$SITE" <<'EOF'
import pathlib, sys, zipfile
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    zipfile.ZipFile(wheel).extractall(sys.argv[2])
EOF
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    "$PY" -c "import sys, torch, numpy, soundfile, soxr; print(sys.version); print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'soundfile', soundfile.__version__, 'soxr', soxr.__version__)"
    nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# ${STEMCUT_GPU_ARGS} is split on purpose: several options.
# shellcheck disable=SC2086
timeout 360 "$PY" scripts/bench.py --device "$DEVICE" --threads "${STEMCUT_GPU_THREADS:-8}" \
    --repeat "${STEMCUT_GPU_REPEAT:-2}" --in-process-batch auto 1 32 --compare 20 \
    ${STEMCUT_GPU_ARGS:-} --json "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/gpu_bench.log"
