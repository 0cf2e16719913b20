#!/usr/bin/env bash
# `make gpu-check`: what a GPU node runs as it is, in at most 8 minutes on one GPU.
#   1. the CUDA-marked tests (`pytest -m cuda tests/test_cuda.py`, including D's step as
#      a CUDA graph and compiled against eager), at most 300 s;
#   2. benchmarks/bench_core.py --device cuda at the paper's scale (g-step, sampling
#      10,000, D epoch, MLE epoch, each against the in-process reference; the D epoch also
#      as a CUDA graph and compiled, with its first round's capture / compile time), with
#      the projected wall time of the full paper schedule, at most 170 s.
# Without CUDA it says so and exits 0 (the CPU suite and CI do not run this).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

if ! "$PYTHON" - <<'EOF'
import sys
import torch
if torch.cuda.is_available():
    print(f"gpu-check: CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    sys.exit(0)
why = "this torch is a CPU build" if torch.version.cuda is None else "no CUDA device is visible"
print(f"gpu-check: CUDA is absent ({why}; torch {torch.__version__}): nothing to check here.")
sys.exit(1)
EOF
then
    exit 0
fi

start=$SECONDS
# Only the CUDA file: collecting the whole suite would import packages (nltk, the
# pipeline's) that a GPU image with its own torch may not have.
timeout 300 "$PYTHON" -m pytest tests/test_cuda.py -m cuda -q -rs -p no:cacheprovider
tests=$?
[ "$tests" -eq 124 ] && echo "gpu-check: the CUDA tests ran past 300 s and were stopped"
timeout 170 "$PYTHON" benchmarks/bench_core.py --device cuda
bench=$?
[ "$bench" -eq 124 ] && echo "gpu-check: bench_core.py --device cuda ran past 170 s and was stopped"
echo "gpu-check: tests exit $tests, benchmark exit $bench, $((SECONDS - start)) s in all"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
