"""The critic-free algorithms' advantages against hand values, the registry's checks, and every
registered algorithm learning a toy task end to end through the environment."""

import math

import pytest
import torch

from agents.algorithms import ALGORITHMS, GRPO, PPO, RLOO, Minibatch, ReinforcePlusPlus, Scores
from agents.algorithms.core import group_moments, policy_loss_with_kl
from agents.algorithms.grpo import grpo_advantages
from agents.algorithms.reinforce_pp import discounted_returns
from agents.algorithms.rloo import rloo_advantages
from agents.config import TrainConfig
from agents.policy import TokenOutputs
from agents.rollout import Rollout
from tests.helpers import learn_toy_task, stub_policy

GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])


def test_group_moments():
    mean, std, size = group_moments(torch.tensor([1.0, 3.0, 5.0, 10.0]), torch.tensor([0, 0, 1, 1]))
    assert mean.tolist() == [2.0, 2.0, 7.5, 7.5]
    assert torch.allclose(std, torch.tensor([math.sqrt(2), math.sqrt(2), math.sqrt(12.5), math.sqrt(12.5)]))
    assert size.tolist() == [2, 2, 2, 2]


def test_grpo_advantages_by_hand():
    # group 0: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.577; group 1 all equal: no signal
    expected = 0.5 / math.sqrt(1 / 3)
    advantages = grpo_advantages(REWARDS, GROUPS)
    assert torch.allclose(advantages[:4], torch.tensor([expected, -expected, -expected, expected]), atol=1e-3)
    assert advantages[4:].abs().max() == 0
    assert grpo_advantages(REWARDS, GROUPS, std_norm=False)[:4].tolist() == [0.5, -0.5, -0.5, 0.5]  # Dr. GRPO


def test_rloo_advantages_by_hand():
    # episode 0: 1 - mean(0, 0, 1) = 2/3; episode 1: 0 - mean(1, 0, 1) = -2/3
    advantages = rloo_advantages(REWARDS, GROUPS)
    assert torch.allclose(advantages[:4], torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    assert torch.allclose(
        advantages, 4 / 3 * grpo_advantages(REWARDS, GROUPS, std_norm=False)
    )  # k / (k - 1) x group-centred
    with pytest.raises(ValueError, match="at least two episodes per group"):
        rloo_advantages(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0, 0, 1]))


def test_discounted_returns_by_hand():
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]])
    rewards = torch.tensor([[0.0, -0.1, -0.2, 1.0, 0.0]])
    assert torch.allclose(discounted_returns(rewards, mask, 1.0), torch.tensor([[0.0, 0.7, 0.8, 1.0, 0.0]]))
    assert torch.allclose(
        discounted_returns(rewards, mask, 0.5), torch.tensor([[0.0, -0.1 - 0.1 + 0.25, -0.2 + 0.5, 1.0, 0.0]])
    )


def _rollout(rewards, mask, group=None):
    batch = len(rewards)
    width = mask.shape[1] + 1
    return Rollout(
        tokens=torch.zeros(batch, width, dtype=torch.long),
        attention_mask=torch.ones(batch, width, dtype=torch.long),
        action_mask=mask,
        rewards=torch.as_tensor(rewards),
        group=torch.arange(batch) // 2 if group is None else group,
        truncated=torch.zeros(batch, dtype=torch.bool),
        infos=[],
        trajectories=[],
    )


def _algorithm(cls, **overrides):
    return cls(stub_policy(), TrainConfig(**overrides))


def test_reinforce_pp_puts_token_kl_in_the_reward_and_normalises_globally():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    old = torch.tensor([[-1.0, -1.0, 0.0], [-1.0, -1.0, -1.0]])
    ref = old - torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 1.0]])  # log pi - log pi_ref
    rollout = _rollout([1.0, 0.0], mask)
    prepared = _algorithm(ReinforcePlusPlus, kl_coef=0.1).prepare(rollout, Scores(old_logprobs=old, ref_logprobs=ref))
    # per-token rewards: [-0.05, 1, .] and [0, 0, -0.1]; reward-to-go: [0.95, 1.0] and [-0.1, -0.1, -0.1]
    returns = torch.tensor([0.95, 1.0, -0.1, -0.1, -0.1])
    expected = (returns - returns.mean()) / returns.std(unbiased=False)
    got = prepared.advantages[mask.bool()]
    assert torch.allclose(got, expected, atol=1e-4)


def test_rloo_puts_the_sequence_kl_in_the_reward():
    mask = torch.ones(2, 2)
    old = torch.zeros(2, 2)
    ref = torch.tensor([[-1.0, -1.0], [0.0, 0.0]])  # episode 0 drifted: summed k1 KL 2
    prepared = _algorithm(RLOO, kl_coef=0.25).prepare(
        _rollout([1.0, 1.0], mask), Scores(old_logprobs=old, ref_logprobs=ref)
    )
    # rewards 1 - 0.5 = 0.5 and 1: advantages -0.5 and +0.5 on every token
    assert prepared.advantages.tolist() == [[-0.5, -0.5], [0.5, 0.5]] and prepared.returns is None


def test_grpo_loss_adds_the_k3_kl_to_the_reference():
    mask = torch.ones(1, 2)
    logprobs = torch.tensor([[-1.0, -2.0]])
    tokens = torch.zeros(1, 3, dtype=torch.long)
    batch = Minibatch(
        tokens=tokens,
        attention_mask=torch.ones_like(tokens),
        action_mask=mask,
        advantages=torch.ones(1, 2),
        old_logprobs=logprobs,
        ref_logprobs=torch.tensor([[-1.5, -2.0]]),
    )
    outputs = TokenOutputs(logprobs=logprobs, entropy=None, values=None)
    without, _ = policy_loss_with_kl(outputs, batch, clip=0.2, kl_coef=0.0)
    with_kl, stats = policy_loss_with_kl(outputs, batch, clip=0.2, kl_coef=0.1)
    k3 = (math.expm1(-0.5) + 0.5) / 2  # mean over the two tokens; the second has no drift
    assert without.item() == pytest.approx(-1.0)  # ratio 1, advantage 1
    assert with_kl.item() == pytest.approx(-1.0 + 0.1 * k3)
    assert stats["kl_to_reference"].item() == pytest.approx(k3)


def test_group_sizes_and_the_registry():
    assert set(ALGORITHMS) >= {"ppo", "grpo", "rloo", "reinforce_pp"}
    assert PPO.group_size(0) == 1 and ReinforcePlusPlus.group_size(0) == 1
    assert GRPO.group_size(0) == 8 and RLOO.group_size(4) == 4
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        GRPO.group_size(1)


def test_train_rejects_unknown_algorithms_and_uneven_groups(tmp_path):
    from agents.train import train_rl

    with pytest.raises(ValueError, match="valid algorithms: .*'grpo'"):
        train_rl(TrainConfig(out=str(tmp_path), algo="a2c"), "unused")
    with pytest.raises(ValueError, match=r"episodes_per_iteration \(12\) must be a multiple of group_size \(8\)"):
        train_rl(TrainConfig(out=str(tmp_path), algo="grpo", episodes_per_iteration=12), "unused")


# -- learning, end to end through the environment --------------------------------------------------


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_every_algorithm_learns_to_write_a_rewarded_sequence(tmp_path, algo):
    first, last = learn_toy_task(tmp_path, algo, seed=6)
    # measured: the mean reward of the last five of 25 iterations, seeds 0-7 (policy and sampling;
    # this test is seed 6): 0.6 is "a b" learned, about 1 all three words, 0.33 the first alone.
    # ppo     0.92 0.66 0.66 0.67 0.66 0.54 0.96 0.67    grpo         0.33 0.66 0.66 0.63 0.67 0.65 0.94 0.67
    # rloo    0.74 0.94 0.66 0.99 1.00 0.33 0.99 0.66    reinforce_pp 0.67 0.33 0.65 0.66 0.67 0.66 0.94 0.94
    # (examples/custom_algorithm.py's reinforce_baseline: 0.33 0.33 0.66 0.33 0.67 0.33 0.99 0.67)
    assert first < 0.2 and last > 0.6


def _short_rollout(seed: int) -> Rollout:
    """Eight 7-token episodes of the toy vocabulary (REWARDS, GROUPS), actions from the third token."""
    tokens = torch.randint(0, 10, (8, 7), generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(8, 6)
    mask[:, 2:] = 1
    return Rollout(
        tokens, torch.ones_like(tokens), mask, REWARDS.clone(), GROUPS.clone(), torch.zeros(8, dtype=torch.bool), [], []
    )


def test_scoring_is_skipped_only_when_the_rollout_serves_one_optimiser_step():
    def needs(cls, **overrides):
        return _algorithm(
            cls, **{"episodes_per_iteration": 8, "minibatch_size": 8, "ppo_epochs": 1, "kl_coef": 0.0, **overrides}
        ).needs_scoring(8)

    assert not needs(GRPO) and not needs(RLOO) and not needs(ReinforcePlusPlus)
    assert needs(PPO)  # the critic's values
    assert needs(GRPO, kl_coef=0.01)  # the reference's log-probabilities
    assert needs(GRPO, ppo_epochs=2) and needs(GRPO, minibatch_size=4)  # the ratio moves away from 1


def test_an_unscored_single_step_update_equals_the_scored_one(tmp_path):
    from transformers import AutoModelForCausalLM

    from agents.policy import ActorCritic
    from tests.helpers import toy_policy

    toy_policy(tmp_path / "policy")
    config = TrainConfig(
        algo="grpo",
        episodes_per_iteration=8,
        minibatch_size=8,
        micro_batch_size=4,
        ppo_epochs=1,
        kl_coef=0.0,
        bf16=False,
    )
    rollout = _short_rollout(seed=0)
    tokens = rollout.tokens
    gradients = []
    for scored in (True, False):
        policy = ActorCritic(AutoModelForCausalLM.from_pretrained(tmp_path / "policy"), "none")
        algorithm = GRPO(policy, config)
        assert not algorithm.needs_scoring(8) and algorithm.score(rollout) == Scores()  # nothing to score
        scores = None
        if scored:
            with torch.no_grad():
                scores = Scores(
                    old_logprobs=policy(
                        tokens, torch.ones_like(tokens), config.temperature, with_entropy=False, with_values=False
                    ).logprobs
                )
        metrics = algorithm.update(rollout, scores)  # one optimiser step: its gradient stays in .grad
        assert metrics["train/clip_fraction"] == 0.0
        gradients.append(torch.cat([p.grad.flatten() for p in policy.actor_parameters()]))
    assert gradients[0].abs().max() > 1e-3  # the rewards differ within the groups: there is a gradient
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-4, atol=1e-7)


def test_the_algorithm_scores_what_its_update_needs(tmp_path):
    """Scoring belongs to the algorithm: old log-probabilities, the critic's values, and the
    reference's log-probabilities only when kl_coef > 0; a rollout record is never modified."""
    import dataclasses

    from transformers import AutoModelForCausalLM

    from agents.policy import ActorCritic
    from tests.helpers import toy_policy

    toy_policy(tmp_path / "policy")
    rollout = _short_rollout(seed=1)
    mask = rollout.action_mask
    with pytest.raises(dataclasses.FrozenInstanceError):
        rollout.rewards = torch.zeros(8)
    for cls, critic, kl_coef in ((PPO, "shared", 0.0), (GRPO, "none", 0.05)):
        policy = ActorCritic(AutoModelForCausalLM.from_pretrained(tmp_path / "policy"), critic)
        config = TrainConfig(
            episodes_per_iteration=8, minibatch_size=4, micro_batch_size=4, kl_coef=kl_coef, bf16=False
        )
        scores = cls(policy, config).score(rollout)
        assert scores.old_logprobs.shape == mask.shape
        assert (scores.values is not None) == (cls is PPO) and (scores.ref_logprobs is not None) == (kl_coef > 0)
        if scores.ref_logprobs is not None:  # the reference is the starting policy: same numbers
            torch.testing.assert_close(scores.ref_logprobs, scores.old_logprobs)
        metrics = cls(policy, config).update(rollout)
        assert metrics["perf/score_seconds"] > 0 and "train/grad_norm" in metrics


@pytest.mark.parametrize("critic", ["shared", "separate"])
def test_a_single_step_ppo_rollout_is_scored_for_its_values_alone(tmp_path, critic):
    """When the rollout serves one optimiser step, PPO's scoring gives the critic's values (the
    same as a full scoring pass) and no old log-probabilities: no logits over the vocabulary, and
    a separate critic's scoring does not run the actor at all."""
    from transformers import AutoModelForCausalLM

    from agents.policy import ActorCritic
    from tests.helpers import toy_policy

    toy_policy(tmp_path / "policy")
    rollout = _short_rollout(seed=2)
    mask = rollout.action_mask
    policy = ActorCritic(AutoModelForCausalLM.from_pretrained(tmp_path / "policy"), critic)
    with torch.no_grad():  # a critic that is not zero
        policy.value_head.weight.normal_(generator=torch.Generator().manual_seed(0))
    logits_rows = []
    hook = policy.actor.lm_head.register_forward_hook(lambda module, args, out: logits_rows.append(out.shape[1]))
    scores = {}
    try:
        for minibatch in (8, 4):  # one optimiser step; two
            config = TrainConfig(episodes_per_iteration=8, minibatch_size=minibatch, micro_batch_size=8, bf16=False)
            algorithm = PPO(policy, config)
            assert algorithm.needs_old_logprobs(8) == (minibatch == 4)
            logits_rows.clear()
            scores[minibatch] = algorithm.score(rollout)
            if minibatch == 8:
                assert logits_rows == ([] if critic == "separate" else [1])  # one position's logits, or none
    finally:
        hook.remove()
    assert scores[8].old_logprobs is None and scores[4].old_logprobs.shape == mask.shape
    assert scores[8].values.abs().max() > 1e-3
    torch.testing.assert_close(scores[8].values, scores[4].values)
    metrics = PPO(policy, TrainConfig(episodes_per_iteration=8, minibatch_size=8, bf16=False)).update(rollout)
    assert metrics["train/clip_fraction"] == 0.0  # the update's own log-probabilities: the ratio is 1


def test_the_entropy_is_differentiated_only_where_a_loss_uses_it(tmp_path):
    """An update whose loss only logs the entropy computes it without a gradient: the same
    gradient as with one (PPO with entropy_coef 0 either way), the same logged entropy."""
    from transformers import AutoModelForCausalLM

    from agents.policy import ActorCritic
    from tests.helpers import toy_policy

    toy_policy(tmp_path / "policy")
    rollout = _short_rollout(seed=3)
    config = TrainConfig(episodes_per_iteration=8, minibatch_size=8, micro_batch_size=4, bf16=False)
    runs = []
    for trained in (True, False):
        policy = ActorCritic(AutoModelForCausalLM.from_pretrained(tmp_path / "policy"), "shared")
        algorithm = PPO(policy, config)
        assert algorithm.trains_entropy is False  # entropy_coef is 0
        grad_graph = []
        original = policy.forward

        def recording(*args, original=original, trained=trained, grad_graph=grad_graph, **kwargs):
            out = original(*args, **{**kwargs, "entropy_grad": trained})
            if out.entropy is not None:  # the update's passes (scoring computes none)
                grad_graph.append(out.entropy.requires_grad)
            return out

        policy.forward = recording
        metrics = algorithm.update(rollout)
        runs.append((torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None]), metrics))
        assert set(grad_graph) == {trained}
    torch.testing.assert_close(runs[0][0], runs[1][0])
    assert runs[0][1]["train/entropy"] == pytest.approx(runs[1][1]["train/entropy"])
    assert PPO(policy, TrainConfig(entropy_coef=0.01)).trains_entropy and not GRPO(policy, config).trains_entropy


def test_length_buckets_cover_every_row_once_and_cut_padding():
    import numpy as np

    from agents.algorithms.base import length_buckets
    from agents.device import padded_length

    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 260, size=64)
    rows = rng.permutation(64)[:40]
    buckets = length_buckets(rows, lengths, max_rows=16, device=torch.device("cpu"))
    assert sorted(np.concatenate(buckets).tolist()) == sorted(rows.tolist()) and all(len(b) <= 16 for b in buckets)
    padded = sum(len(b) * padded_length(int(lengths[b].max())) for b in buckets)
    unsorted = sum(len(b) * padded_length(int(lengths[b].max())) for b in np.array_split(rows, 3))
    assert padded < 0.8 * unsorted  # lengths from 20 to 260: sorting and cutting saves much
    same = np.full(64, 100)
    assert [len(b) for b in length_buckets(np.arange(64), same, 16, torch.device("cpu"))] == [16] * 4
    assert len(length_buckets(np.arange(8), same, 16, torch.device("cuda"))) == 1  # a call costs more there


def test_bucketed_scoring_and_update_equal_one_padded_micro_batch(tmp_path, monkeypatch):
    """Rows of very different lengths: scores and the gradient with length buckets equal those of
    the whole minibatch as one padded micro-batch."""
    import numpy as np
    from transformers import AutoModelForCausalLM

    import agents.algorithms.base as base
    from agents.policy import ActorCritic
    from tests.helpers import toy_policy

    toy_policy(tmp_path / "policy")
    lengths = [40, 9, 38, 12, 35, 10, 7, 33]
    tokens = torch.randint(0, 10, (8, 48), generator=torch.Generator().manual_seed(2))
    attention = torch.zeros_like(tokens)
    actions = torch.zeros(8, 47)
    for row, length in enumerate(lengths):
        attention[row, :length] = 1
        actions[row, 3 : length - 1] = 1
    rollout = Rollout(
        tokens, attention, actions, REWARDS.clone(), GROUPS.clone(), torch.zeros(8, dtype=torch.bool), [], []
    )
    # two optimiser steps (epochs): the scoring gives old log-probabilities too
    config = TrainConfig(episodes_per_iteration=8, minibatch_size=8, micro_batch_size=8, ppo_epochs=2, bf16=False)
    results = []
    for bucketed in (True, False):
        if not bucketed:
            monkeypatch.setattr(base, "length_buckets", lambda rows, lengths, max_rows, device: [rows])
        torch.manual_seed(0)
        policy = ActorCritic(AutoModelForCausalLM.from_pretrained(tmp_path / "policy"), "shared")
        algorithm = PPO(policy, config)
        scores = algorithm.score(rollout)
        metrics = algorithm.update(rollout, scores)
        gradient = torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
        results.append((scores, gradient, metrics["perf/padding_share"]))
    (scored, gradient, padding), (one_batch, one_gradient, one_padding) = results
    assert padding < one_padding  # the bucketed update ran on fewer padded tokens
    for name in ("old_logprobs", "values"):
        torch.testing.assert_close(
            getattr(scored, name) * actions, getattr(one_batch, name) * actions, rtol=1e-4, atol=1e-5
        )
    assert gradient.abs().max() > 1e-4
    torch.testing.assert_close(gradient, one_gradient, rtol=1e-3, atol=1e-6)
    assert np.isclose(one_padding, 1 - sum(lengths) / (8 * 48))
