"""Generation engines behind one interface: prompts (token ids) in, completions (token ids) out.

* :class:`HFEngine`: the policy itself, batched sampling over a static KV cache, on a CPU
  (``transformers`` ``generate``) or a GPU (satori's decoding loop, its one-token step a CUDA
  graph); both decodings write the same tokens.
* ``agents.engines.vllm.VLLMEngine``: vLLM with its own copy of the weights, refreshed from the
  learner by ``sync_weights`` (imported on demand: vLLM is an optional dependency).

An engine returns, per prompt, the tokens it wrote up to and including the first stop token
(or ``max_new_tokens`` of them), ready for ``SatoriMathVectorEnv.step_tokens``.
"""

from agents.engines.base import GenerationEngine, SamplingParams
from agents.engines.hf import HFEngine

__all__ = ["ENGINES", "GenerationEngine", "HFEngine", "SamplingParams", "make_engine"]

ENGINES = ("hf", "vllm")


def make_engine(name: str, model, env, model_path: str | None = None) -> GenerationEngine:
    """The engine ``name`` for ``model``, writing what ``env`` accepts."""
    if name == "hf":
        return HFEngine.for_env(model, env)
    if name == "vllm":
        from agents.engines.vllm import VLLMEngine

        return VLLMEngine.for_env(model, env, model_path)
    raise ValueError(f"unknown engine {name!r}; valid engines: {list(ENGINES)}")
