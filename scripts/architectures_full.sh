#!/usr/bin/env bash
# Rerun the table "Every fold under the full recipe" of docs/architectures.md: every architecture
# under the full recipe (pitch, the statistics classifier, no validation speakers, the last 10
# epochs averaged, one thread per process) on EMO-DB leave-one-speaker-out and RAVDESS actor folds,
# each protocol's folds shared out between two training processes, then `compare` pools them and
# measures the files (the table and plot in OUT/comparison.md and .png). Days of CPU on two cores:
# the table's minutes per fold add up. A run already complete in OUT is pooled, not trained again.
# Usage: RTSER_DATA=DIR bash scripts/architectures_full.sh [OUT]   (default runs/architectures-full)
#        DRY=1 bash scripts/architectures_full.sh                    (print the commands only)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/architectures-full}
python=.venv/bin/python; [ -x "$python" ] || python=python3
c=training/configs
recipe=($c/train/average_last10.yaml $c/experiments/pitch.yaml $c/experiments/statistics_with_validation.yaml
        $c/experiments/no_validation.yaml $c/train/one_thread.yaml)

source scripts/fold_processes.sh

# folds and run name of a protocol under these overlays (the name compare gives the run)
describe() {
    "$python" -c 'import sys
from training.config import load_config
config = load_config(sys.argv[1], sys.argv[2:])
print(max(config.folds.values()), config.name)' "$@"
}

row() {  # PROTOCOL_EMODB PROTOCOL_RAVDESS ARCHITECTURE [OVERLAY ...]
    local emodb=$1 ravdess=$2 architecture=$3
    shift 3
    local overlays=() overlay protocol folds name
    for overlay in "$@" "${recipe[@]}"; do overlays+=(--with "$overlay"); done
    for protocol in "$emodb" "$ravdess"; do
        read -r folds name < <(describe "$protocol" "$architecture" "$@" "${recipe[@]}")
        local half=$((folds / 2)) train=("$python" -m training train "$protocol" --with "$architecture" "${overlays[@]}" --no-final --out "$out/$name")
        in_two_processes "0-$((half - 1))" "$half-$((folds - 1))" "${train[@]}"
    done
    run "$python" -m training compare --protocol "$emodb" --protocol "$ravdess" --architecture "$architecture" "${overlays[@]}" --threads 1 --out "$out"
}

row $c/emodb_loso_long.yaml $c/ravdess_actors_long.yaml $c/architectures/lightsernet.yaml
row $c/emodb_loso_long.yaml $c/ravdess_actors_long.yaml $c/architectures/cnn_lstm_paper.yaml
row $c/emodb_loso_long.yaml $c/ravdess_actors_long.yaml $c/architectures/attention_fcn_paper.yaml
row $c/emodb_loso.yaml $c/ravdess_actors.yaml $c/architectures/timnet.yaml
row $c/emodb_loso.yaml $c/ravdess_actors.yaml $c/architectures/cktim.yaml $c/experiments/cktim_taps8.yaml
