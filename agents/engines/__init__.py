"""Generation engines behind one interface: prompts (token ids) in, completions (token ids) out.

* :class:`HFEngine`: the policy itself, batched sampling over a static KV cache, on a CPU
  (``transformers`` ``generate``) or a GPU (satori's decoding loop, its one-token step a CUDA
  graph); both decodings write the same tokens.
* ``agents.engines.vllm.VLLMEngine``: vLLM with its own copy of the weights, refreshed from the
  learner by ``sync_weights`` (imported on demand: vLLM is an optional dependency).

An engine returns, per prompt, the tokens it wrote up to and including the first stop token
(or ``max_new_tokens`` of them), ready for ``SatoriMathVectorEnv.step_tokens``.
"""

from collections.abc import Callable
from typing import Any

from agents.engines.base import GenerationEngine, SamplingParams
from agents.engines.hf import HFEngine

__all__ = ["ENGINES", "GenerationEngine", "HFEngine", "SamplingParams", "load_engine", "make_engine"]


def _vllm(model: Any, env: Any, model_path: str | None) -> GenerationEngine:
    from agents.engines.vllm import VLLMEngine  # vLLM is an optional dependency: imported on demand

    return VLLMEngine.for_env(model, env, model_path)


ENGINES: dict[str, Callable[[Any, Any, str | None], GenerationEngine]] = {
    "hf": lambda model, env, model_path: HFEngine.for_env(model, env),
    "vllm": _vllm,
}
"""Engine name -> ``(model, env, model_path) -> GenerationEngine``; add an entry to make your own
engine a valid ``engine`` setting."""


def make_engine(name: str, model: Any, env: Any, model_path: str | None = None) -> GenerationEngine:
    """The engine ``name`` for ``model``, writing what ``env`` accepts."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; valid engines: {list(ENGINES)}")
    return ENGINES[name](model, env, model_path)


def load_engine(
    model_path: str, name: str = "hf", device: str = "auto", prompt_template: str = "compact"
) -> tuple[GenerationEngine, Any]:
    """The policy at ``model_path`` (local path or hub id) and the engine ``name`` over it,
    writing what a SatoriMath env with ``prompt_template`` accepts; returns ``(engine,
    tokenizer)``: what an evaluation of a saved policy needs."""
    from agents.models import load_policy
    from satori_env import SatoriMathVectorEnv

    model, tokenizer = load_policy(model_path, device=device)
    envs = SatoriMathVectorEnv(num_envs=1, tokenizer=tokenizer, prompt_template=prompt_template)
    return make_engine(name, model, envs, model_path=model_path), tokenizer
