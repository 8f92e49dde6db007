#!/usr/bin/env bash
# Satori's RL stage (the release's train.sh) in OpenRLHF 0.11 on one node of 8 GPUs: PPO with a
# critic, GAE (gamma 1, lambda 0.95), no KL, actor lr 2e-7, critic lr 5e-6, 1024 prompts a rollout,
# batches of 128, temperature 0.6, 3072 new tokens; SatoriMath episodes through the agent executor
# (examples/openrlhf_agent.py: restart states, the reflection bonus 0.5). Any flag may follow.
#
#   ray start --head --num-gpus 8
#   MODEL=/path/to/Satori-SFT-7B bash examples/openrlhf_satori_ppo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-Satori-reasoning/Satori-SFT-7B}
DATA=${DATA:-data/satori_verl}
OUT=${OUT:-runs/openrlhf_satori}
[ -f "$DATA/train.parquet" ] || satori verl-data --tasks gsm8k:train --out "$DATA/train.parquet"
python3 -m openrlhf.cli.train_ppo_ray \
  --ref.num_nodes 1 --ref.num_gpus_per_node 2 \
  --critic.num_nodes 1 --critic.num_gpus_per_node 2 \
  --actor.num_nodes 1 --actor.num_gpus_per_node 2 \
  --vllm.num_engines 2 --vllm.tensor_parallel_size 2 \
  --train.colocate_actor_ref \
  --actor.model_name_or_path "$MODEL" --critic.model_name_or_path "$MODEL" \
  --train.agent_func_path "$PWD/examples/openrlhf_agent.py" \
  --data.prompt_dataset "$DATA/train.parquet" --data.input_key prompt --data.label_key extra_info \
  --data.apply_chat_template --data.max_samples 100000 --data.max_len 7168 \
  --rollout.batch_size 1024 --rollout.micro_batch_size 32 --rollout.temperature 0.6 --rollout.max_new_tokens 3072 \
  --train.batch_size 128 --train.micro_batch_size 1 --train.max_epochs 1 \
  --actor.adam.lr 2e-7 --critic.adam.lr 5e-6 --algo.kl.init_coef 0.0 \
  --algo.advantage.estimator gae --algo.advantage.gamma 1.0 --algo.advantage.lambd 0.95 \
  --reward.normalize_enable --ds.zero_stage 3 --ds.packing_samples --ds.adam_offload \
  --actor.gradient_checkpointing_enable \
  --ckpt.output_dir "$OUT/final" --ckpt.path "$OUT/ckpt" --ckpt.save_steps 20 --logger.tensorboard_dir "$OUT/logs" "$@"
