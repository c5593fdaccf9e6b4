#!/usr/bin/env bash
# Rerun the table "A corpus held out whole" of docs/architectures.md: every architecture under the
# five-corpus leave-one-corpus-out recipe (five_corpora_loco.yaml), each run's five folds shared out
# between two training processes (one thread each: train/one_thread.yaml) and then pooled into
# runs/loco-*/report.md; then the ensemble row (scripts/ensemble_scores.py) and the distilled row,
# whose teachers are three of those runs (experiments/distilled_loco.yaml names their folders).
# About 8 hours on two cores once the features are cached (the table's 812 minutes of epochs, halved
# by the two processes). A fold already trained is not trained again, and one stopped part-way
# resumes at its next epoch.
# Usage: RTSER_DATA=DIR bash scripts/architectures_loco.sh   (DRY=1: print the commands only)
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python; [ -x "$python" ] || python=python3
c=training/configs

source scripts/fold_processes.sh

row() {  # RUN_FOLDER [OVERLAY ...]: train the five folds in two processes, then pool them
    local out=runs/$1 overlays=() overlay
    shift
    for overlay in "$@" train/one_thread.yaml; do overlays+=(--with "$c/$overlay"); done
    local train=("$python" -m training train "$c/five_corpora_loco.yaml" "${overlays[@]}" --no-final --out "$out")
    in_two_processes 0-2 3-4 "${train[@]}"
    run "${train[@]}"
}

row loco-nostats   # Light-SERNet at half width: the default model's recipe
row loco-timnet2 architectures/timnet.yaml experiments/detector_frames.yaml experiments/timnet_loco.yaml
row loco-afcn architectures/attention_fcn.yaml experiments/detector_frames.yaml
row loco-afcn-paper architectures/attention_fcn_paper.yaml experiments/detector_frames.yaml
row loco-afcn-stride2 architectures/attention_fcn_paper_stride2.yaml experiments/detector_frames.yaml
row loco-cnnlstm architectures/cnn_lstm_paper.yaml experiments/detector_frames.yaml
row loco-cktim architectures/cktim.yaml experiments/cktim_taps8.yaml experiments/detector_frames.yaml experiments/timnet_loco.yaml
run "$python" scripts/ensemble_scores.py runs/loco-nostats runs/loco-timnet2 runs/loco-afcn
row loco-distilled experiments/distilled_loco.yaml
