"""The outcome reward model (ORM) behind Satori's preference bonus.

A transformers sequence-classification model with one output reads the prompt and a
completion and gives a score; Bradley-Terry training (``-log sigmoid(s_chosen - s_rejected)``)
teaches it to score correct solutions above wrong ones. ``OutcomeRewardModel`` is a scorer for
:class:`satori_env.PreferenceBonus` (``gym.make(..., scorer=rm)``), batched in the vector env.

    satori train-rm --out runs/reward-model            # the tiny default, on synthetic pairs
    satori train-rm --model PATH --pairs pairs.jsonl   # any local checkpoint or hub id

A run directory holds ``model/`` (load it with ``OutcomeRewardModel.from_pretrained``),
``tb/`` (TensorBoard) and ``metrics.json``.

Pairs are (problem, chosen, rejected): :func:`synthetic_pairs` writes them for arithmetic
problems (a correct COAT solution against one whose final answer is off);
:func:`pairs_from_trajectories` takes them from a policy's own rollouts (a right and a wrong
answer to the same problem), as Satori trained its ORM.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from agents.arguments import check_fields
from agents.device import choose_device
from agents.models import llama_config
from satori_env import Problem, Trajectory
from satori_env.atomic import atomic_directory
from satori_env.coat import get_template
from satori_env.pretrained import load_pretrained, locate_pretrained
from satori_env.tasks import ArithmeticTasks
from satori_env.tasks.arithmetic import write_solution
from satori_env.tokenizer import add_coat_tokens, load_tokenizer

__all__ = [
    "OutcomeRewardModel",
    "PreferencePair",
    "RewardModelArgs",
    "pairs_from_trajectories",
    "pairwise_accuracy",
    "synthetic_pairs",
    "train_reward_model",
]

_SETTINGS_FILE = "satori_reward_model.json"


@dataclass(frozen=True)
class PreferencePair:
    """A completion that should score above another for the same problem."""

    problem: Problem
    chosen: str
    rejected: str


class OutcomeRewardModel:
    """Scores ``(problem, completion)`` with a sequence-classification model (one label).

    Args:
        model: a ``transformers`` ``*ForSequenceClassification`` model with ``num_labels=1``.
        tokenizer: its tokenizer (COAT tokens added if missing).
        template: the prompt template the problem is shown in (see :mod:`satori_env.coat`).
        max_length: longest input; longer ones keep their end (where the answer is).
        normalize: :meth:`score_batch` gives ``(score - mean) / std`` with the score statistics
            stored in the model's config (``config.mean``, ``config.std``: what ``satori train-rm``
            records, and what OpenRLHF's ``--normalize_reward`` reads from a reward model); a
            model without them is left as it is. :meth:`scores` (training) never normalises.
    """

    def __init__(
        self, model: Any, tokenizer: Any, template: str = "compact", max_length: int = 512, normalize: bool = False
    ) -> None:
        self.model, self.tokenizer, self.normalize = model, tokenizer, normalize
        add_coat_tokens(tokenizer)
        if model.config.num_labels != 1:
            raise ValueError(f"a reward model has one output; this model has num_labels={model.config.num_labels}")
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = tokenizer.pad_token_id
        self.template, self.max_length = get_template(template), max_length
        tokenizer.padding_side, tokenizer.truncation_side = "right", "left"

    @classmethod
    def tiny(cls, tokenizer: Any = None, seed: int = 0) -> OutcomeRewardModel:
        """A Llama-style scorer of about 1M parameters, randomly initialised (train it)."""
        from transformers import LlamaForSequenceClassification

        tokenizer = load_tokenizer(tokenizer)
        add_coat_tokens(tokenizer)
        torch.manual_seed(seed)
        config = llama_config(
            "1m", len(tokenizer), num_labels=1, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False
        )
        return cls(LlamaForSequenceClassification(config), tokenizer)

    @classmethod
    def from_pretrained(
        cls, path: str, device: str = "auto", normalize: bool = False, **kwargs: Any
    ) -> OutcomeRewardModel:
        """Load a saved reward model, or any sequence-classification checkpoint (local path or
        hub id) to fine-tune as one; ``normalize`` as in the class."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = locate_pretrained(path, "reward model")
        settings_file = Path(path) / _SETTINGS_FILE
        settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
        model = load_pretrained(
            AutoModelForSequenceClassification.from_pretrained, path, "reward model", num_labels=1, **kwargs
        )
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, path, "reward model")
        reward_model = cls(model, tokenizer, normalize=normalize, **settings)
        reward_model.model.to(choose_device(device))
        return reward_model

    def save_pretrained(self, path: str) -> None:
        """Save model, tokenizer and settings (atomically: a crash keeps the previous save)."""
        with atomic_directory(path) as tmp:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            settings = {"template": self.template.text, "max_length": self.max_length}
            (tmp / _SETTINGS_FILE).write_text(json.dumps(settings, indent=2))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def scores(self, problems: Sequence[Problem], completions: Sequence[str]) -> torch.Tensor:
        """Differentiable scores, shape ``(batch,)``."""
        texts = [self.template.format(p.question) + c for p, c in zip(problems, completions)]
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return self.model(**batch).logits.squeeze(-1).float()

    @torch.no_grad()
    def score_batch(self, problems: Sequence[Problem], completions: Sequence[str], batch_size: int = 64) -> list[float]:
        """Scores for many completions (no gradient), in chunks of ``batch_size``."""
        was_training = self.model.training
        self.model.eval()
        out: list[float] = []
        for start in range(0, len(completions), batch_size):
            out += self.scores(problems[start : start + batch_size], completions[start : start + batch_size]).tolist()
        self.model.train(was_training)
        mean, std = getattr(self.model.config, "mean", None), getattr(self.model.config, "std", None)
        if self.normalize and mean is not None and std:
            out = [(score - mean) / std for score in out]
        return out

    def record_score_statistics(self, pairs: Sequence[PreferencePair]) -> tuple[float, float]:
        """Store the mean and standard deviation of the scores of ``pairs``' completions (chosen
        and rejected) in the model's config, saved with it, for ``normalize``; returns them."""
        if self.normalize:
            raise ValueError("record_score_statistics reads raw scores: call it on a reward model with normalize=False")
        problems = [p.problem for p in pairs]
        scores = torch.tensor(
            self.score_batch(problems + problems, [p.chosen for p in pairs] + [p.rejected for p in pairs])
        )
        self.model.config.mean, self.model.config.std = float(scores.mean()), float(scores.std().clamp(min=1e-6))
        return self.model.config.mean, self.model.config.std

    def __call__(self, problem: Problem, completion: str) -> float:
        return self.score_batch([problem], [completion])[0]


def synthetic_pairs(
    n: int, levels: Sequence[int] = (1, 2), split: str = "train", seed: int = 0
) -> list[PreferencePair]:
    """Arithmetic pairs: a correct COAT solution against the same one with its final answer off."""
    rng = random.Random(seed)
    pairs = []
    for problem in ArithmeticTasks(levels, split=split, seed=seed).take(n):
        answer = int(problem.answer)
        wrong = answer + rng.choice([-10, -3, -2, -1, 1, 2, 3, 10])
        wrong = wrong if wrong >= 0 else answer + 1
        chosen = write_solution(problem)
        pairs.append(PreferencePair(problem, chosen, chosen.replace(f"\\boxed{{{answer}}}", f"\\boxed{{{wrong}}}")))
    return pairs


def pairs_from_trajectories(trajectories: Iterable[Trajectory], tokenizer: Any, seed: int = 0) -> list[PreferencePair]:
    """Pair each wrong trajectory with a right one of the same problem (when there is one)."""
    rng = random.Random(seed)
    right: dict[str, list[Trajectory]] = {}
    wrong: dict[str, list[Trajectory]] = {}
    for trajectory in trajectories:
        (right if trajectory.correct else wrong).setdefault(trajectory.problem.id, []).append(trajectory)

    def text(trajectory: Trajectory) -> str:
        return tokenizer.decode(list(trajectory.response), skip_special_tokens=False)

    pairs = []
    for problem_id, losers in wrong.items():
        for loser in losers:
            if right.get(problem_id):
                winner = rng.choice(right[problem_id])
                pairs.append(PreferencePair(winner.problem, text(winner), text(loser)))
    return pairs


def pairwise_accuracy(reward_model: OutcomeRewardModel, pairs: Sequence[PreferencePair]) -> float:
    """Share of pairs whose chosen completion scores above the rejected one."""
    problems = [p.problem for p in pairs]
    chosen = reward_model.score_batch(problems, [p.chosen for p in pairs])
    rejected = reward_model.score_batch(problems, [p.rejected for p in pairs])
    return sum(c > r for c, r in zip(chosen, rejected)) / max(len(pairs), 1)


def train_reward_model(
    reward_model: OutcomeRewardModel,
    pairs: Sequence[PreferencePair],
    steps: int = 600,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    eval_pairs: Sequence[PreferencePair] = (),
    log_dir: str | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Bradley-Terry training: minimise ``-log sigmoid(s_chosen - s_rejected)`` over ``pairs``.

    Returns the last loss and, with ``eval_pairs``, the held-out pairwise accuracy.
    """
    if not pairs:
        raise ValueError("train_reward_model needs at least one preference pair")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model = reward_model.model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    writer = _summary_writer(log_dir)
    loss_value = float("nan")
    for step in tqdm(range(1, steps + 1), desc="reward model", disable=not progress):
        batch = rng.sample(list(pairs), min(batch_size, len(pairs)))
        problems = [p.problem for p in batch]
        scores = reward_model.scores(problems + problems, [p.chosen for p in batch] + [p.rejected for p in batch])
        chosen, rejected = scores.split(len(batch))
        loss = -torch.nn.functional.logsigmoid(chosen - rejected).mean()  # Bradley-Terry
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        loss_value = loss.item()
        if writer is not None:
            writer.add_scalar("reward_model/loss", loss_value, step)
    metrics = {"loss": loss_value}
    if eval_pairs:
        metrics["eval_pairwise_accuracy"] = pairwise_accuracy(reward_model, eval_pairs)
        if writer is not None:
            writer.add_scalar("reward_model/eval_pairwise_accuracy", metrics["eval_pairwise_accuracy"], steps)
    if writer is not None:
        writer.close()
    return metrics


def _summary_writer(log_dir: str | None):
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir)


@dataclass
class RewardModelArgs:
    """Train an outcome reward model (Bradley-Terry) for Satori's preference bonus."""

    out: str = "runs/reward-model"
    """run directory: the model goes to OUT/model, TensorBoard logs to OUT/tb, metrics to OUT/metrics.json"""
    model: str | None = None
    """a sequence-classification checkpoint (local path or hub id) to start from; None builds the tiny default"""
    pairs: str | None = None
    """JSON lines of {"question", "answer", "chosen", "rejected"}; None writes synthetic arithmetic pairs"""
    num_pairs: int = 4000
    """synthetic training pairs (when --pairs is not given)"""
    levels: tuple[int, ...] = (1, 2)
    """arithmetic levels of the synthetic pairs"""
    steps: int = 600
    """optimiser steps"""
    batch_size: int = 32
    """pairs per step"""
    lr: float = 1e-3
    """peak learning rate (cosine decay)"""
    eval_pairs: int = 300
    """held-out synthetic pairs (test split) to report pairwise accuracy on"""
    seed: int = 0
    """seed of the data and the initialisation"""
    device: str = "auto"
    """"auto", "cpu" or "cuda" """

    def __post_init__(self) -> None:
        from satori_env.tasks.arithmetic import LEVELS

        check_fields(
            self,
            at_least={"num_pairs": 1, "steps": 1, "batch_size": 1, "eval_pairs": 0, "seed": 0},
            above={"lr": 0},
            subsets={"levels": sorted(LEVELS)},
        )

    def run(self) -> dict[str, float]:
        reward_model = (
            OutcomeRewardModel.tiny(seed=self.seed)
            if self.model is None
            else OutcomeRewardModel.from_pretrained(self.model)
        )
        reward_model.model.to(choose_device(self.device))
        pairs = (
            synthetic_pairs(self.num_pairs, self.levels, "train", self.seed)
            if self.pairs is None
            else _read_pairs(self.pairs)
        )
        held_out = synthetic_pairs(self.eval_pairs, self.levels, "test", self.seed + 1) if self.eval_pairs else []
        out = Path(self.out)
        metrics = train_reward_model(
            reward_model, pairs, self.steps, self.batch_size, self.lr, self.seed, held_out, log_dir=str(out / "tb")
        )
        metrics["score_mean"], metrics["score_std"] = reward_model.record_score_statistics(pairs[:2000])
        reward_model.save_pretrained(str(out / "model"))
        (out / "metrics.json").write_text(json.dumps({**metrics, "args": asdict(self)}, indent=2))
        return metrics


def _read_pairs(path: str) -> list[PreferencePair]:
    pairs = []
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = {"question", "answer", "chosen", "rejected"} - set(row)
            if missing:
                raise ValueError(f"{path}:{number}: a preference pair needs the fields {sorted(missing)}")
            problem = Problem(f"pairs/{number}", row["question"], str(row["answer"]), "pairs")
            pairs.append(PreferencePair(problem, row["chosen"], row["rejected"]))
    return pairs
