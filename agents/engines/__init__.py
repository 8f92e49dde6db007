"""Generation engines behind one interface: prompts (token ids) in, completions (token ids) out.

* :class:`HFEngine`: ``transformers`` ``generate`` on the policy itself (KV cache, batched
  sampling), on a CPU or a GPU.

An engine returns, per prompt, the tokens it wrote up to and including the first stop token
(or ``max_new_tokens`` of them), ready for ``SatoriMathVectorEnv.step_tokens``.
"""

from agents.engines.base import GenerationEngine, SamplingParams
from agents.engines.hf import HFEngine

__all__ = ["GenerationEngine", "HFEngine", "SamplingParams"]
