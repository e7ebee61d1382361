#!/usr/bin/env bash
# The main job end to end on the built-in corpus (no download), on CPU:
#   install -> data_prep (procedural corpus, Kong's mixing recipe, TFRecord shards)
#   -> train 2APAE (cpu_small preset, content-based time attention: see README) -> evaluate
#   (metrics table, localisation chosen on validation, attention figure).
# Outputs under ${DEMO_DIR:-demo}/: data/, run/ (checkpoints, logs), run/eval_test.md, run/figures/.
# Re-running is safe: finished stages are reused (the dataset is not rebuilt, training resumes).
set -euo pipefail
cd "$(dirname "$0")"
DEMO_DIR=${DEMO_DIR:-demo}
export TF_CPP_MIN_LOG_LEVEL=2 PIP_DISABLE_PIP_VERSION_CHECK=1
start=$(date +%s)
stage() { echo; echo "=== [$(( $(date +%s) - start ))s] $*"; }

stage "install"
python -m pip install -q -e ".[prep]"   # [prep]: TensorFlow + tensorflow-datasets for data_prep

stage "data_prep: built-in corpus, SNR 20 dB"
python -m data_prep --source builtin --out "$DEMO_DIR/data" --snr 20 --mixtures-per-fold "${DEMO_MIXTURES_PER_FOLD:-150}"

stage "train: 2APAE, cpu_small preset, test fold 1"
# DEMO_EPOCHS=8 shortens training on a slow machine (cpu_small trains 12; README, "Results of the demo").
python train.py --data "$DEMO_DIR/data" --snr 20 --test-fold 1 --model 2apae --preset cpu_small --attention-form content \
  ${DEMO_EPOCHS:+--epochs "$DEMO_EPOCHS"} --workdir "$DEMO_DIR/run"

stage "evaluate: test fold 1 (clip metrics + localisation) and an attention figure"
python evaluate.py run --workdir "$DEMO_DIR/run"
python evaluate.py figure --workdir "$DEMO_DIR/run" --random 1

stage "done in $(( $(date +%s) - start ))s: checkpoint $DEMO_DIR/run/checkpoints, table $DEMO_DIR/run/eval_test.md, figure(s) in $DEMO_DIR/run/figures/"
