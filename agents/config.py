"""The configuration of ``satori train``: one flat dataclass, and presets as instances of it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from agents.arguments import check_fields

__all__ = ["PRESETS", "TrainConfig", "import_modules", "preset"]


@dataclass
class TrainConfig:
    """Satori's two stages on the token-level MDP: format tuning, then RL with Restart-and-Explore."""

    # -- run -----------------------------------------------------------------------------------------
    out: str = "runs/tiny"
    """run directory: OUT/base, OUT/demos.jsonl, OUT/sft (stage one), OUT/rl (stage two)"""
    seed: int = 0
    """seed of everything (models, data, rollouts, minibatches)"""
    resume: bool = False
    """continue stage two from the newest checkpoint in OUT/rl"""
    device: str = "auto"
    """"auto" (CUDA if there is a GPU), "cpu" or "cuda" """
    threads: int = 0
    """CPU threads for torch (0: torch's default)"""
    bf16: bool = True
    """bf16 autocast where the device supports it"""
    progress: bool = True
    """show progress bars"""

    # -- stage one: model and format tuning -----------------------------------------------------------
    model: str | None = None
    """a format-tuned policy (local path or hub id) to start RL from; None runs stage one first"""
    model_preset: str = "tiny"
    """the model stage one builds (satori build-model presets)"""
    synth_n: int = 20000
    """COAT demonstrations stage one synthesises"""
    synth_levels: tuple[int, ...] | None = None
    """procedural levels of those demonstrations (None: train_levels, the levels RL trains on)"""
    sft_steps: int = 1000
    """format-tuning steps of stage one (the cosine schedule's length; early stopping may end it first)"""
    sft_validation: int = 0
    """demonstrations stage one holds out for a validation loss every 100 steps (0: none)"""
    sft_patience: int = 0
    """stage one stops after this many validations without a new best loss and keeps the best weights (0: never)"""
    compare_continued: bool = False
    """after RL, also continue stage one's format tuning for as many minutes as RL took (OUT/sft_continued) and
    evaluate it on the same held-out problems: the imitation baseline RL has to beat"""

    # -- rounds: iterative self-improvement (agents.rounds) --------------------------------------------
    rounds: int = 1
    """RL rounds; each after the first distils the previous round's verified trajectories into the base model
    (with some original demonstrations), then runs RL again (OUT/round-K; Satori's round 2)"""
    distill_problems: int = 2000
    """training problems each round samples the previous round's policy on"""
    distill_samples: int = 4
    """samples per problem (the rollout temperature); the verified-correct ones are kept, each once"""
    distill_only_self_corrections: bool = False
    """keep only trajectories in which a reflect or explore turned a wrong answer into a right one"""
    distill_original_share: float = 0.5
    """share of a round's format-tuning set drawn from the original demonstrations (as many as exist); 0: none"""
    carry_restart_buffer: bool = True
    """a round's RL starts with the previous round's restart buffer (False: an empty one)"""
    carry_curriculum: bool = True
    """a round's RL starts with the previous round's curriculum state (False: a fresh one)"""
    round_base: str | None = None
    """the model rounds >= 2 format-tune (None: OUT/base, the model stage one built)"""
    round_demos: str | None = None
    """the original demonstrations rounds >= 2 mix in (None: OUT/demos.jsonl, stage one's)"""

    # -- environment --------------------------------------------------------------------------------
    tasks: str = "arith"
    """training problems: "arith" (procedural, train split, train_levels) or a source name such as gsm8k:train"""
    train_levels: tuple[int, ...] = (1, 2, 3)
    """procedural levels to train on"""
    curriculum: str | None = None
    """which level each episode trains on: None (a uniform random mix), uniform (the same, tracked per level),
    or adaptive (promote/demote by pass rate); see satori_env.curriculum"""
    prompt_template: str = "compact"
    """prompt template (compact, satori, or a string with {question})"""
    max_new_tokens: int = 192
    """tokens the policy may write per episode"""
    max_prompt_tokens: int | None = None
    """the prompt window: a problem with a restart prefix longer than this is not started from (the drawn restart
    state gives way to a fresh problem, counted in restart/skipped); None: the longest problem prompt plus a whole
    response, so every restart state fits"""
    reward: str = "satori"
    """reward preset: satori (rule + reflection bonus) or binary"""
    bonus_scale: float = 0.5
    """scale of the reflection bonus"""
    reward_model: str | None = None
    """an outcome reward model (satori train-rm's OUT/model, or any sequence-classification checkpoint: local path
    or hub id) whose sigmoid score is added to every episode's reward, weight 1 (Satori's preference bonus, logged as
    reward/preference); None: rule and reflection terms only"""
    normalize_preference: bool = True
    """the reward model's score is first normalised by its stored mean and std (the release's --normalize_reward)"""
    restart_prob: float = 0.25
    """share of episodes that start from a restart state (RAE)"""
    restart_strategy: str = "frontier"
    """how the restart buffer samples: uniform, balanced or frontier"""
    restart_capacity: int = 4096
    """restart states kept"""
    max_backtrack: int = 1
    """step boundaries before the end of a trajectory that also give restart states"""

    # -- rollouts ------------------------------------------------------------------------------------
    engine: str = "hf"
    """generation engine: hf (transformers generate) or vllm"""
    rollout_precision: str = "auto"
    """precision the hf engine samples rollouts in: fp32, bf16 (bf16 autocast: the learner's precision with
    bf16), or auto (bf16 on a CPU when bf16 is on, where it samples about 1.5x faster; fp32 on a GPU). Greedy
    evaluation always runs in fp32"""
    iterations: int = 25
    """RL iterations (one rollout and one update each)"""
    episodes_per_iteration: int = 128
    """rollout batch: episodes per iteration"""
    group_size: int = 0
    """episodes per start in a rollout; 0: the algorithm's default (1 for ppo and reinforce_pp,
    8 for the group-relative grpo and rloo, which need at least 2)"""
    temperature: float = 0.7
    """sampling temperature of rollouts (the learner's log-probabilities use the same)"""
    top_p: float = 1.0
    """nucleus sampling of rollouts"""
    seed_per_episode: bool = False
    """sample every episode of an iteration from its own stream (the iteration's seed + its index): the same
    rollouts whatever the number of rollout workers (a little slower with the HF engine on a CPU)"""

    # -- learner -------------------------------------------------------------------------------------
    algo: str = "ppo"
    """RL algorithm (satori train --algo; see agents.algorithms.ALGORITHMS)"""
    critic: str = "shared"
    """value function: shared (a head on the policy's trunk) or separate (its own transformer)"""
    actor_lr: float = 1e-5
    """policy learning rate"""
    critic_lr: float = 1e-3
    """critic learning rate"""
    critic_init: str = "actor"
    """where a separate critic starts: actor (a copy of the policy's transformer, a zero value head), reward_model
    (the --reward-model checkpoint's transformer and score head: Satori's release), or a sequence-classification
    checkpoint (local path or hub id) that reads the policy's tokens"""
    lr_schedule: str = "constant"
    """learning rates over the run: constant, or cosine_with_min_lr (linear warm-up, then cosine decay to a floor;
    Satori's release)"""
    lr_warmup_ratio: float = 0.03
    """cosine_with_min_lr: share of the run's optimiser steps spent warming up"""
    min_lr_ratio: float = 0.1
    """cosine_with_min_lr: the floor, as a share of each peak learning rate"""
    ppo_epochs: int = 1
    """passes over each rollout"""
    minibatch_size: int = 32
    """episodes per optimiser step (train batch)"""
    micro_batch_size: int = 32
    """episodes per forward/backward pass (gradient accumulation)"""
    clip_eps: float = 0.2
    """PPO ratio clipping"""
    value_clip: float = 0.2
    """value clipping around the rollout's values"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    entropy_coef: float = 0.0
    """weight of the entropy bonus"""
    kl_coef: float = 0.0
    """weight of the KL penalty to the reference policy (0, as in Satori's release, skips the reference)"""
    kl_estimator: str = "k1"
    """PPO only: the KL estimator in the per-token reward, k1, k2 or k3 (grpo uses k3 in its loss, rloo and
    reinforce_pp k1 in the reward)"""
    gamma: float = 1.0
    """discount"""
    lam: float = 1.0
    """GAE lambda (1: every token's advantage is the episode return minus its value; below 1 a
    terminal-only reward barely reaches the early tokens while the critic is still poor)"""
    normalize_reward: bool = True
    """PPO only: normalise episode rewards by running statistics (the critic-free algorithms normalise
    their advantages instead)"""
    whiten_advantages: bool = True
    """PPO: normalise advantages over each batch"""
    group_std_norm: bool = True
    """GRPO: divide group-relative advantages by the group's standard deviation (False: Dr. GRPO)"""
    grad_clip: float = 1.0
    """gradient-norm clipping"""
    gradient_checkpointing: bool = False
    """recompute each layer's activations in the backward pass instead of keeping them (less memory, more time)"""

    # -- distribution (agents.distributed) -------------------------------------------------------------
    learner_ranks: int = 1
    """torch.distributed ranks of the learner, the policy and critic sharded with FSDP2 (1: one process)"""
    rollout_workers: int = 1
    """with --ray: Ray actors that generate and judge the rollouts, each a share of the episodes"""
    gpus_per_worker: int = 0
    """with --ray: GPUs of each rollout worker (its vLLM engine's tensor parallelism); 0: CPU workers, HF engine"""
    imports: tuple[str, ...] = ()
    """modules imported before the run, by the driver and by every Ray actor (satori train --import MODULE):
    e.g. one that registers your algorithm, engine or reward preset"""
    ray: bool = False
    """run the learner ranks and rollout workers as Ray actors (a local cluster unless --ray-address)"""
    ray_address: str | None = None
    """the Ray cluster to join (auto: the one started on this machine with ray start --head; host:port);
    None: a local cluster of the run's own"""
    offload_optimizer: bool = False
    """keep the sharded parameters, gradients and optimiser state on the CPU (FSDP2 CPUOffloadPolicy)"""
    device_memory_gb: float = 0.0
    """memory of one learner device for the memory plan; 0: what the device reports (RAM on a CPU)"""

    # -- checkpoints and evaluation -------------------------------------------------------------------
    checkpoint_every: int = 10
    """iterations between checkpoints"""
    eval_levels: tuple[int, ...] = (1, 2, 3)
    """held-out procedural levels evaluated before and after RL"""
    eval_per_level: int = 200
    """held-out problems per level (greedy); 0 skips the evaluation"""

    def __post_init__(self) -> None:
        """Counts, rates and names that need no model (``agents.train.check_config`` checks the
        algorithm, engine and curriculum once custom algorithms are registered)."""
        from satori_env.coat import get_template
        from satori_env.restart import STRATEGIES
        from satori_env.rewards import REWARD_PRESETS
        from satori_env.tasks.arithmetic import LEVELS

        check_fields(
            self,
            at_least={
                "seed": 0,
                "threads": 0,
                "synth_n": 1,
                "sft_steps": 1,
                "sft_validation": 0,
                "sft_patience": 0,
                "rounds": 1,
                "distill_problems": 1,
                "distill_samples": 1,
                "distill_original_share": 0,
                "max_new_tokens": 1,
                "max_prompt_tokens": 1,
                "bonus_scale": 0,
                "restart_prob": 0,
                "restart_capacity": 1,
                "max_backtrack": 0,
                "iterations": 1,
                "episodes_per_iteration": 1,
                "group_size": 0,
                "ppo_epochs": 1,
                "minibatch_size": 1,
                "micro_batch_size": 1,
                "vf_coef": 0,
                "entropy_coef": 0,
                "kl_coef": 0,
                "learner_ranks": 1,
                "rollout_workers": 1,
                "gpus_per_worker": 0,
                "device_memory_gb": 0,
                "gamma": 0,
                "lam": 0,
                "lr_warmup_ratio": 0,
                "min_lr_ratio": 0,
                "checkpoint_every": 1,
                "eval_per_level": 0,
            },
            above={
                "temperature": 0,
                "top_p": 0,
                "actor_lr": 0,
                "critic_lr": 0,
                "clip_eps": 0,
                "value_clip": 0,
                "grad_clip": 0,
            },
            at_most={"restart_prob": 1, "top_p": 1, "gamma": 1, "lam": 1, "lr_warmup_ratio": 1, "min_lr_ratio": 1},
            choices={
                "restart_strategy": STRATEGIES,
                "reward": sorted(REWARD_PRESETS),
                "kl_estimator": ("k1", "k2", "k3"),
                "rollout_precision": ("auto", "fp32", "bf16"),
                "lr_schedule": ("constant", "cosine_with_min_lr"),
            },
            subsets={"train_levels": sorted(LEVELS), "eval_levels": sorted(LEVELS), "synth_levels": sorted(LEVELS)},
        )
        get_template(self.prompt_template)
        if self.sft_patience and not self.sft_validation:
            raise ValueError("--sft-patience needs held-out demonstrations: set --sft-validation N (e.g. 500)")
        if self.distill_original_share >= 1:
            raise ValueError(
                f"distill_original_share must be below 1 (a share of the round's set; 0: distilled only), got "
                f"{self.distill_original_share}"
            )


PRESETS: dict[str, TrainConfig] = {
    # A 3.4M-parameter model on a 2-core CPU, start to finish in under 20 minutes (measured).
    # The regime of examples/ablations.py: demonstrations of levels 1-3 only, RL on levels 1-4
    # (level 4's division and larger factors are shown by no demonstration, only answered),
    # level 5 held out from every stage; the adaptive curriculum trains where the pass rate is in
    # its band. 1500 format-tuning steps is what fits the time (held-out demonstration loss still
    # falls at 2000); --compare-continued adds the imitation baseline (docs/guide/rl.md).
    "tiny": TrainConfig(
        synth_levels=(1, 2, 3),
        train_levels=(1, 2, 3, 4),
        eval_levels=(1, 2, 3, 4, 5),
        sft_steps=1500,
        sft_validation=500,
        curriculum="adaptive",
    ),
    # GPU presets: a Qwen2.5-Math checkpoint given with --model (local path or hub id), Satori's
    # hyper-parameters (arXiv 2502.02508; its release: examples/satori/train.sh and the defaults of
    # openrlhf/cli/train_ppo_ray.py it does not override), GSM8K's training problems. Every release
    # value is pinned in tests/test_train.py::test_the_7b_preset_is_the_release_recipe. The tiny
    # preset keeps its own measured values instead: lam 1.0 (the terminal reward reaches every token
    # while the critic is poor), a constant learning rate, running reward normalisation.
    "7b": TrainConfig(
        out="runs/7b",
        model_preset="",  # nothing to build: give --model
        tasks="gsm8k:train",
        prompt_template="satori",
        max_new_tokens=3072,
        max_prompt_tokens=1024,  # --prompt_max_len (the release truncates longer prompts; here the state is skipped)
        engine="vllm",
        iterations=100,
        episodes_per_iteration=1024,
        minibatch_size=128,
        micro_batch_size=1,
        temperature=0.6,
        critic="separate",
        actor_lr=2e-7,
        critic_lr=5e-6,
        lam=0.95,  # train_ppo_ray.py's default --lambd
        critic_init="reward_model",  # its critic starts from --reward_pretrain (give --reward-model)
        lr_schedule="cosine_with_min_lr",  # its scheduler, warm-up 3 % (--lr_warmup_ratio), floor 0.1 x lr
        normalize_reward=False,  # no normalisation of the total reward; advantages whitened (the default here)
        restart_prob=0.5,
        restart_capacity=100_000,
        checkpoint_every=20,
        eval_per_level=0,
        gradient_checkpointing=True,
    ),
}
PRESETS["1.5b"] = replace(
    PRESETS["7b"], out="runs/1.5b", episodes_per_iteration=512, minibatch_size=64, micro_batch_size=2
)
PRESETS["0.5b"] = replace(
    PRESETS["7b"], out="runs/0.5b", episodes_per_iteration=256, minibatch_size=32, micro_batch_size=4
)


def preset(name: str) -> TrainConfig:
    """A copy of a preset; unknown names list the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {sorted(PRESETS)}")
    return replace(PRESETS[name])


def import_modules(names: tuple[str, ...] | list[str]) -> None:
    """Import each module (``--import``): what it registers (an algorithm, an engine, a reward
    preset) becomes available to the run. An error names the module."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"--import {name}: {error}") from None
