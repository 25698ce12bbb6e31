#!/usr/bin/env bash
# Pilot of issue 11's mechanisms on one built-in task: grpo, cipo (the new defaults), cipo_published
# (every published mechanism), cipo_transplant; 3 seeds, 100 RL steps each, one torch thread per run;
# then scripts/pilot_table.py writes the per-run CSV and the mean / spread table.
#
#   bash scripts/pilot_mechanisms.sh arithmetic          # ~2-3 h on 2 shared cores with PARALLEL=1
#   PARALLEL=2 bash scripts/pilot_mechanisms.sh missing_operand
#   SEEDS=1 CONFIGS=grpo,cipo bash scripts/pilot_mechanisms.sh arithmetic trainer.max_epochs=10
#
# Extra arguments are Hydra overrides for every run. Results: logs/pilot/<task> (runs) and
# docs/results/pilot/<task>.csv (+ <task>.md, the summary).
set -euo pipefail
cd "$(dirname "$0")/.."
task="${1:?usage: pilot_mechanisms.sh arithmetic|missing_operand [overrides...]}"
shift
case "$task" in
  arithmetic) setting=(experiment=builtin) ;;
  missing_operand) setting=(experiment=builtin_missing_operand) ;;
  *) echo "unknown task $task (arithmetic | missing_operand)" >&2; exit 2 ;;
esac
configs="${CONFIGS:-grpo,cipo,cipo_published,cipo_transplant}"
seeds="${SEEDS:-1,2,3}"
parallel="${PARALLEL:-1}"
sweep="${SWEEP:-logs/pilot/$task}"
out="${OUT:-docs/results/pilot}"
python="${CIPO_PYTHON:-.venv/bin/python}"

IFS=, read -r -a names <<< "$configs"
pids=()
for ((part = 0; part < parallel && part < ${#names[@]}; part++)); do
  share=()
  for ((i = part; i < ${#names[@]}; i += parallel)); do share+=("${names[i]}"); done
  list=$(IFS=,; echo "${share[*]}")
  "$python" -m cipo.cli.train -m "${setting[@]}" "algorithm=$list" "seed=$seeds" num_threads=1 \
    task_name=pilot "hydra.sweep.dir=$sweep" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
"$python" scripts/pilot_table.py "$sweep" --csv "$out/$task.csv" --summary "$out/$task.md"
exit "$status"
