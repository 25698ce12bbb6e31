#!/usr/bin/env bash
# The built-in comparison in one command: GRPO, CIPO and four ablations on the built-in setting
# (experiment=builtin x algorithm=...), 3 seeds each, then scripts/compare_runs.py writes the plots
# and the table into the sweep folder.
#
#   bash scripts/compare_builtin.sh                      # 18 runs; ~1 h 45 min on 2 cores (docs/results.md)
#   SEEDS=1 ALGORITHMS=grpo,cipo bash scripts/compare_builtin.sh trainer.max_epochs=20
#
# Extra arguments are Hydra overrides for every run. The algorithms are split over PARALLEL sweeps
# (default 2: one torch thread each, so one per core) that share one sweep folder; job folders are
# named by their overrides, so they never collide. SWEEP sets the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
algorithms="${ALGORITHMS:-grpo,cipo,cipo_failed_only,cipo_no_risk,cipo_fixed_replay,cipo_sft_corrections}"
seeds="${SEEDS:-1,2,3}"
parallel="${PARALLEL:-2}"
sweep="${SWEEP:-logs/builtin_compare/multiruns/comparison_$(date +%F_%H-%M-%S)}"
bin="${CIPO_BIN:-.venv/bin}"

IFS=, read -r -a names <<< "$algorithms"
pids=()
for ((part = 0; part < parallel && part < ${#names[@]}; part++)); do
  share=()
  for ((i = part; i < ${#names[@]}; i += parallel)); do share+=("${names[i]}"); done
  list=$(IFS=,; echo "${share[*]}")
  "$bin/cipo-train" -m experiment=builtin "algorithm=$list" "seed=$seeds" "hydra.sweep.dir=$sweep" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
# Plot whatever finished even if a sweep failed: compare_runs lists incomplete runs as skipped.
"$bin/python" scripts/compare_runs.py "$sweep"
echo "comparison written to $sweep/comparison (comparison.md and PNGs)"
exit "$status"
