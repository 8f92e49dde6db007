"""The environment alone: ``import satori_env`` and a whole episode (verifier included) load no
torch and nothing of ``agents``, so ``pip install satori-env`` (without the ``agents`` extra) is
enough for it. CI also runs this file in a virtual environment without torch."""

import subprocess
import sys

SCRIPT = r"""
import sys
import gymnasium as gym
import satori_env

env = gym.make("SatoriMath-v0")
_, info = env.reset(seed=0)
tokenizer = env.unwrapped.tokenizer
text = r"<|continue|>2+91=93<|continue|>The answer is \boxed{93}.<|endoftext|>"
obs, reward, terminated, truncated, info = env.unwrapped.step_tokens(tokenizer.encode(text))
assert terminated and info["verifier_status"] in ("ok", "no_answer")
assert satori_env.verify(r"so \boxed{\frac{\pi}{2}}", r"\pi/2")  # math-verify, in a worker process
envs = gym.make_vec("SatoriMath-v0", num_envs=2)
envs.reset(seed=0)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "agents"))
print(" ".join(loaded) or "none")
"""


def test_the_environment_needs_neither_torch_nor_the_agents():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "none", result.stdout
