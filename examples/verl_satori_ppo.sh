#!/usr/bin/env bash
# Satori's RL stage in verl on one node of 8 GPUs: the data, then verl's PPO trainer with the
# satori_agent loop (examples/verl/satori_ppo.yaml; any verl override may follow).
#
#   MODEL=/path/to/Satori-SFT-7B bash examples/verl_satori_ppo.sh trainer.total_epochs=2
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-Satori-reasoning/Satori-SFT-7B}
DATA=${DATA:-data/satori_verl}
[ -f "$DATA/train.parquet" ] || satori verl-data --tasks gsm8k:train --out "$DATA/train.parquet"
[ -f "$DATA/val.parquet" ] || satori verl-data --tasks math500 --out "$DATA/val.parquet"
python3 -m verl.trainer.main_ppo --config-path "$PWD/examples/verl" --config-name satori_ppo \
  actor_rollout_ref.model.path="$MODEL" \
  data.train_files="$DATA/train.parquet" data.val_files="$DATA/val.parquet" \
  actor_rollout_ref.rollout.agent.agent_loop_config_path="$PWD/examples/verl/satori_agent.yaml" "$@"
