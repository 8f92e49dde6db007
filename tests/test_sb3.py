"""stable-baselines3 on the token-level MDP: sb3-contrib's MaskablePPO honours the action mask."""

import numpy as np
import pytest

from satori_env import SatoriMathEnv
from tests.helpers import mid_vocab_pad_tokenizer

pytest.importorskip("sb3_contrib")


def test_maskable_ppo_learns_on_the_token_env_without_writing_a_masked_token(tmp_path):
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(SatoriMathEnv(tokenizer=str(mid_vocab_pad_tokenizer(tmp_path)), max_new_tokens=6))
    base = env.unwrapped
    assert not base.action_masks()[base.pad_id]  # the padding id sits inside the action space, masked
    model = MaskablePPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=192)  # the env raises ValueError on a masked action: none was taken
    assert len(env.get_episode_rewards()) >= 192 // 6 and set(env.get_episode_rewards()) <= {-1.0, 0.0}

    obs, _ = env.reset(seed=1)
    masks = get_action_masks(model.get_env())
    distribution = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0], action_masks=masks)
    probs = distribution.distribution.probs.detach().numpy()[0]
    assert probs[base.pad_id] == 0 and np.isclose(probs.sum(), 1)
    unmasked = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0]).distribution.probs.detach().numpy()[0]
    assert unmasked[base.pad_id] > 0  # without the mask the policy would put mass on it
