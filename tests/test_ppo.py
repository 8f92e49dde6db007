"""PPO: the math against hand computations, and learning on a toy task end to end."""

import math

import numpy as np
import pytest
import torch

from agents.algorithms.core import (
    KL_ESTIMATORS,
    RunningMoments,
    clipped_policy_loss,
    masked_mean,
    masked_whiten,
    token_rewards,
)
from agents.algorithms.ppo import gae


def reference_gae(rewards, values, gamma, lam):
    """A_t = sum_k (gamma lam)^k delta_{t+k}, delta_t = r_t + gamma V_{t+1} - V_t, V_T = 0: by definition."""
    n = len(rewards)
    deltas = [rewards[t] + gamma * (values[t + 1] if t + 1 < n else 0.0) - values[t] for t in range(n)]
    return [sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t)) for t in range(n)]


def test_gae_by_hand():
    advantages, returns = gae(
        torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), torch.ones(1, 3), 1.0, 1.0
    )
    # delta = (0.1, 0.1, 0.3); A = (0.5, 0.4, 0.3); returns = A + V = 1 everywhere
    assert torch.allclose(advantages, torch.tensor([[0.5, 0.4, 0.3]]))
    assert torch.allclose(returns, torch.ones(1, 3))


@pytest.mark.parametrize("gamma", [1.0, 0.99, 0.5])
@pytest.mark.parametrize("lam", [1.0, 0.95, 0.0])
def test_gae_matches_the_definition_on_the_masked_response(gamma, lam):
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=5), rng.normal(size=5)
    # two prompt positions before the response, two padding positions after it
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 0, 0]], dtype=torch.float32)
    full_rewards = torch.zeros(1, 9)
    full_values = torch.tensor([[9.0, 9.0, *values, 9.0, 9.0]], dtype=torch.float32)
    full_rewards[0, 2:7] = torch.tensor(rewards, dtype=torch.float32)
    advantages, returns = gae(full_rewards, full_values, mask, gamma, lam)
    expected = reference_gae(rewards, values, gamma, lam)
    assert np.allclose(advantages[0, 2:7].numpy(), expected, atol=1e-5)
    assert np.allclose(returns[0, 2:7].numpy(), np.array(expected) + values, atol=1e-5)
    assert (advantages[0, [0, 1, 7, 8]] == 0).all() and (returns[0, [0, 1, 7, 8]] == 0).all()


def test_episode_reward_goes_on_the_last_written_token_and_kl_on_every_one():
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 0, 0]], dtype=torch.float32)
    out = token_rewards(torch.tensor([2.0, -1.0]), mask)
    assert out.tolist() == [[0, 0, 0, 2.0, 0], [0, 0, -1.0, 0, 0]]
    kl = torch.full_like(mask, 0.5)
    out = token_rewards(torch.tensor([2.0, -1.0]), mask, kl, kl_coef=0.1)
    assert torch.allclose(out, torch.tensor([[0, -0.05, -0.05, 1.95, 0], [0, 0, -1.05, 0, 0]]))


def test_clipped_surrogate_by_hand():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1, 3.0]]))  # ratios
    advantages = torch.tensor([[1.0, 1.0, -2.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last token is not an action
    loss, stats = clipped_policy_loss(new, old, advantages, mask, clip=0.2)
    # per token max(-A r, -A clip(r)): (max(-1.5, -1.2), max(-0.5, -0.8), max(2.2, 2.2)); mean over the 3 actions
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3)
    assert stats["clip_fraction"].item() == pytest.approx(2 / 3)
    ratios = torch.tensor([1.5, 0.5, 1.1])
    assert stats["approx_kl"].item() == pytest.approx(((ratios - 1) - torch.log(ratios)).mean().item(), rel=1e-5)


def test_kl_estimators():
    x = torch.tensor(0.5)  # log pi - log pi_ref
    assert KL_ESTIMATORS["k1"](x).item() == 0.5
    assert KL_ESTIMATORS["k2"](x).item() == 0.125
    assert KL_ESTIMATORS["k3"](x).item() == pytest.approx(math.exp(-0.5) - 1 + 0.5)
    assert KL_ESTIMATORS["k3"](torch.tensor(0.0)).item() == 0.0


def test_masked_statistics_and_running_moments():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert masked_mean(x, mask).item() == 2.5
    white = masked_whiten(x, mask)
    assert masked_mean(white, mask).abs().item() < 1e-6 and masked_mean(white**2, mask).item() == pytest.approx(
        1.0, rel=1e-4
    )
    moments = RunningMoments()
    stream = np.random.default_rng(1).normal(3.0, 2.0, size=300)
    for chunk in np.array_split(stream, 7):
        moments.update(torch.tensor(chunk))
    assert moments.mean == pytest.approx(stream.mean()) and moments.std == pytest.approx(stream.std())
    restored = RunningMoments()
    restored.load_state_dict(moments.state_dict())
    assert restored.std == moments.std


# -- the rollout, through the environment -------------------------------------------------------


class ScriptedEngine:
    """Writes each environment copy's correct solution, or a wrong one for odd copies."""

    def __init__(self, envs):
        self.envs, self.prompts, self.completions = envs, None, None

    def generate(self, prompts, params):
        from tests.helpers import solution_tokens

        self.prompts = prompts
        self.completions = [solution_tokens(env, env.problem, wrong=i % 2 == 1) for i, env in enumerate(self.envs.envs)]
        return self.completions

    def sync_weights(self):
        pass


def test_collect_rollout_lines_up_tokens_masks_and_the_envs_rewards():
    from agents.engines import SamplingParams
    from agents.rollout import collect_rollout
    from satori_env import SatoriMathVectorEnv

    envs = SatoriMathVectorEnv(num_envs=6, max_new_tokens=400)
    envs.reset(seed=0)
    engine = ScriptedEngine(envs)
    rollout = collect_rollout(envs, engine, SamplingParams(), group_size=2)
    assert rollout.tokens.shape[1] % 16 == 0 and rollout.action_mask.shape == (6, rollout.tokens.shape[1] - 1)
    assert rollout.rewards.tolist() == [0.0, -1.0] * 3  # the env's rule reward: verifier 0/1 minus 1
    assert [info["correct"] for info in rollout.infos] == [True, False] * 3
    assert rollout.group.tolist() == [0, 0, 1, 1, 2, 2]
    for row, (prompt, completion) in enumerate(zip(engine.prompts, engine.completions)):
        written = rollout.tokens[row, 1:][rollout.action_mask[row].bool()].tolist()
        assert written == completion  # the mask marks exactly the written tokens
        assert rollout.tokens[row, : len(prompt)].tolist() == list(prompt)
        assert int(rollout.attention_mask[row].sum()) == len(prompt) + len(completion)
        assert list(rollout.trajectories[row].response) == completion[:-1]  # the stop token is not part of it
    ids = [t.problem.id for t in rollout.trajectories]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[4] == ids[5] and len(set(ids)) == 3  # a group shares its start


def _toy_actor(tmp_path):
    from transformers import AutoModelForCausalLM

    from tests.helpers import toy_policy

    return AutoModelForCausalLM.from_pretrained(toy_policy(tmp_path / "toy"))


def test_actor_critic_logprobs_entropy_and_forbidden_ids(tmp_path):
    from agents.policy import ActorCritic

    actor = _toy_actor(tmp_path)
    policy = ActorCritic(actor, "shared", forbidden_ids=[10])  # 10 is the toy padding id
    tokens = torch.tensor([[4, 5, 6, 0, 10, 10], [4, 7, 8, 9, 5, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    out = policy(tokens, mask, temperature=0.5)
    logits = actor(input_ids=tokens, attention_mask=mask).logits[:, :-1] / 0.5
    logits[..., 10] = float("-inf")
    expected = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    written = tokens[:, 1:] != 10
    assert torch.allclose(out.logprobs[written], expected[written], atol=1e-5)
    assert torch.all(out.logprobs[~written] == 0)  # padding is never an action: 0, not -inf
    probs = torch.softmax(logits, -1)
    entropy = -(probs * torch.log(probs.clamp(min=1e-30))).sum(-1)
    assert torch.allclose(out.entropy, entropy, atol=1e-4) and torch.isfinite(out.entropy).all()
    assert out.values.shape == (2, 5) and torch.all(out.values == 0)  # the value head starts at zero


@pytest.mark.parametrize("critic", ["shared", "separate"])
def test_value_loss_reaches_the_actor_only_through_a_shared_trunk(tmp_path, critic):
    from agents.policy import ActorCritic

    policy = ActorCritic(_toy_actor(tmp_path), critic)
    torch.nn.init.normal_(policy.value_head.weight)
    tokens = torch.tensor([[4, 5, 6, 7]])
    policy(tokens, torch.ones_like(tokens), with_entropy=False).values.square().sum().backward()
    actor_grads = [p.grad for p in policy.actor_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    critic_grads = [p.grad for p in policy.critic_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert critic_grads
    assert bool(actor_grads) == (critic == "shared")
    assert not {id(p) for p in policy.actor_parameters()} & {id(p) for p in policy.critic_parameters()}


def test_the_reference_is_a_frozen_copy(tmp_path):
    from agents.policy import ActorCritic

    policy = ActorCritic(_toy_actor(tmp_path), "none")
    reference = policy.reference()
    tokens = torch.tensor([[4, 5, 6, 7, 8]])
    mask = torch.ones_like(tokens)
    before = policy(tokens, mask, with_entropy=False).logprobs
    assert torch.allclose(policy.reference_logprobs(reference, tokens, mask, 1.0), before)
    with torch.no_grad():
        for parameter in policy.actor_parameters():
            parameter.add_(0.1)
    assert not torch.allclose(policy(tokens, mask, with_entropy=False).logprobs, before)
    assert torch.allclose(policy.reference_logprobs(reference, tokens, mask, 1.0), before)
    assert not any(p.requires_grad for p in reference.parameters())


def test_a_separate_critic_starts_from_a_reward_model(tmp_path):
    """Satori's release starts the critic from the reward model: its transformer is the trunk and
    its score head the value head, so the first values are the reward model's per-token scores."""
    from transformers import LlamaForSequenceClassification

    from agents.config import TrainConfig
    from agents.models import load_critic_start
    from agents.policy import ActorCritic

    actor = _toy_actor(tmp_path)
    torch.manual_seed(1)
    scorer = LlamaForSequenceClassification(actor.config.__class__(**{**actor.config.to_dict(), "num_labels": 1}))
    scorer.save_pretrained(tmp_path / "rm")
    start = load_critic_start(TrainConfig(critic_init="reward_model", reward_model=str(tmp_path / "rm")))
    policy = ActorCritic(actor, "separate", critic_from=start)
    tokens = torch.tensor([[4, 5, 6, 7, 8]])
    values = policy(tokens, torch.ones_like(tokens), with_entropy=False).values
    with torch.no_grad():
        expected = scorer.score(scorer.model(input_ids=tokens).last_hidden_state)[0, :-1, 0]
        last = scorer(input_ids=tokens).logits[0, 0]  # the reward model's own score of the sequence
    assert torch.allclose(values[0], expected, atol=1e-5) and values.abs().sum() > 0
    assert torch.allclose(
        policy.value_head(scorer.model(input_ids=tokens).last_hidden_state[:, -1])[0, 0], last, atol=1e-5
    )
    assert not {id(p) for p in policy.actor_parameters()} & {id(p) for p in policy.critic_parameters()}
    assert load_critic_start(TrainConfig()) is None  # default: a copy of the actor
    wide = LlamaForSequenceClassification(
        actor.config.__class__(**{**actor.config.to_dict(), "hidden_size": 64, "num_labels": 1})
    )
    with pytest.raises(ValueError, match="must read the actor's 11 token ids at width 32 with one output"):
        ActorCritic(actor, "separate", critic_from=wide)
    with pytest.raises(ValueError, match="is a separate one; this policy's is 'shared'"):
        ActorCritic(actor, "shared", critic_from=start)


def test_a_critic_from_the_reward_model_needs_one(tmp_path):
    from dataclasses import replace

    from agents.config import preset
    from agents.train import check_config

    with pytest.raises(ValueError, match="critic_init 'reward_model' starts the critic from the reward model"):
        check_config(replace(preset("tiny"), critic_init="reward_model"))
    check_config(replace(preset("7b"), model=str(tmp_path), reward_model=str(tmp_path)))  # the release's layout: fine
    with pytest.raises(ValueError, match="no model given"):
        check_config(replace(preset("7b"), reward_model=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="--critic-init"):
        check_config(replace(preset("tiny"), critic_init=str(tmp_path / "missing")))
