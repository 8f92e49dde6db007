"""The learner: a causal LM policy with a value head, and the frozen reference policy.

Token-level view of an episode: the state before token ``t + 1`` is ``tokens[: t + 1]``, the
action is ``tokens[t + 1]``. So for a ``(B, T)`` batch every per-token quantity here is
``(B, T - 1)``: the log-probability of the token that was written next, the entropy of the
policy there, and the critic's value of that state.

The critic is either a linear value head on the policy's own last hidden state (``"shared"``,
one network) or a separate copy of the policy's transformer with its own head
(``"separate"``, as Satori's PPO has it). Forbidden ids (padding, ids beyond the action space)
get no probability, exactly as the generation engine samples.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ActorCritic", "TokenOutputs", "masked_log_softmax"]


@dataclass
class TokenOutputs:
    """Per-token outputs for a ``(B, T)`` batch, each ``(B, T - 1)``."""

    logprobs: torch.Tensor | None  # log pi(tokens[:, 1:] | prefix); None when not asked for
    entropy: torch.Tensor | None
    values: torch.Tensor | None


def masked_log_softmax(logits: torch.Tensor, forbidden: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """log-softmax of ``logits / temperature`` with ``forbidden`` ids (a bool mask over the
    vocabulary) given no probability."""
    logits = logits.float() / temperature
    if forbidden is not None:
        logits = logits.masked_fill(forbidden, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


class ActorCritic(nn.Module):
    """A policy LM and its critic.

    Args:
        actor: a ``transformers`` causal LM.
        critic: "shared" (a value head on the actor's hidden state), "separate" (a copy of the
            actor's transformer plus a value head), or "none" (critic-free algorithms).
        forbidden_ids: token ids the policy never writes.
        critic_from: a ``transformers`` sequence-classification model with one output to start
            the separate critic from (Satori's release starts it from the reward model): its
            transformer becomes the critic's trunk and its score head the value head. It must
            read the actor's token ids (the same tokenizer) and have the actor's width.
    """

    CRITICS = ("shared", "separate", "none")

    def __init__(
        self,
        actor: nn.Module,
        critic: str = "shared",
        forbidden_ids: Iterable[int] = (),
        critic_from: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if critic not in self.CRITICS:
            raise ValueError(f"critic must be one of {self.CRITICS}, got {critic!r}")
        self.actor, self.critic_kind = actor, critic
        hidden = actor.config.hidden_size
        self.critic_trunk = copy.deepcopy(actor.get_decoder()) if critic == "separate" else None
        self.value_head = nn.Linear(hidden, 1) if critic != "none" else None
        if self.value_head is not None:
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        if critic_from is not None:
            self._start_critic_from(critic_from)
        vocab = actor.get_output_embeddings().weight.shape[0]
        forbidden = torch.zeros(vocab, dtype=torch.bool)
        forbidden[list(forbidden_ids)] = True
        self.register_buffer("forbidden", forbidden, persistent=False)

    def _start_critic_from(self, scorer: nn.Module) -> None:
        if self.critic_kind != "separate":
            raise ValueError(
                f"a critic started from a reward model is a separate one; this policy's is {self.critic_kind!r}"
            )
        vocab = self.actor.get_input_embeddings().num_embeddings
        width, rows = scorer.config.hidden_size, scorer.get_input_embeddings().num_embeddings
        if width != self.actor.config.hidden_size or rows < vocab or scorer.config.num_labels != 1:
            raise ValueError(
                f"the critic's starting model must read the actor's {vocab} token ids at width "
                f"{self.actor.config.hidden_size} with one output; it has {rows} ids, width {width}, "
                f"{scorer.config.num_labels} outputs"
            )
        head = scorer.score if hasattr(scorer, "score") else scorer.get_output_embeddings()
        self.critic_trunk = scorer.base_model
        with torch.no_grad():
            self.value_head.weight.copy_(head.weight.float())
            self.value_head.bias.copy_(head.bias.float() if getattr(head, "bias", None) is not None else 0.0)

    def actor_parameters(self) -> list[nn.Parameter]:
        return list(self.actor.parameters())

    def critic_parameters(self) -> list[nn.Parameter]:
        trunk = list(self.critic_trunk.parameters()) if self.critic_trunk is not None else []
        head = list(self.value_head.parameters()) if self.value_head is not None else []
        return trunk + head

    def forward(
        self,
        tokens: torch.Tensor,
        attention_mask: torch.Tensor,
        temperature: float = 1.0,
        with_entropy: bool = True,
        with_values: bool = True,
        entropy_grad: bool = True,
        with_logprobs: bool = True,
    ) -> TokenOutputs:
        """Log-probabilities of the written tokens, and optionally entropies and values.
        ``entropy_grad=False``: the entropy is a statistic only (no gradient through it; a
        backward over the whole vocabulary at every position saved). ``with_logprobs=False``
        (and no entropy): the values alone, without the policy's logits over the vocabulary
        (a separate critic runs without the actor)."""
        want_values = with_values and self.value_head is not None
        want_logits = with_logprobs or with_entropy
        logprobs = entropy = out = None
        if want_logits or self.critic_trunk is None:
            trunk_only = {} if want_logits else {"logits_to_keep": 1}  # the hidden states, one position's logits
            out = self.actor(
                input_ids=tokens,
                attention_mask=attention_mask,
                output_hidden_states=want_values and self.critic_trunk is None,
                **trunk_only,
            )
        if want_logits:
            logp_all = masked_log_softmax(out.logits[:, :-1], self.forbidden, temperature)
            logprobs = _written(logp_all, tokens) if with_logprobs else None
        if with_entropy:
            with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
                probs = logp_all.exp()
                entropy = -(probs * logp_all.masked_fill(probs == 0, 0.0)).sum(-1)
        values = None
        if want_values:
            if self.critic_trunk is None:
                hidden = out.hidden_states[-1]
            else:
                hidden = self.critic_trunk(input_ids=tokens, attention_mask=attention_mask).last_hidden_state
            values = self.value_head(hidden[:, :-1].float()).squeeze(-1).clone()  # not a view (FSDP warns of views)
        return TokenOutputs(logprobs, entropy, values)

    def reference(self) -> nn.Module:
        """A frozen copy of the current actor, for the KL penalty."""
        frozen = copy.deepcopy(self.actor).eval()
        for parameter in frozen.parameters():
            parameter.requires_grad_(False)
        return frozen

    @torch.no_grad()
    def reference_logprobs(
        self, reference: nn.Module, tokens: torch.Tensor, attention_mask: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        logits = reference(input_ids=tokens, attention_mask=attention_mask).logits[:, :-1]
        return _written(masked_log_softmax(logits, self.forbidden, temperature), tokens)


def _written(logp_all: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log pi of the token written next; 0 where that token is forbidden (padding, never an
    action), so that masking a padded position multiplies 0 rather than -inf."""
    logprobs = logp_all.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    return torch.where(torch.isfinite(logprobs), logprobs, torch.zeros_like(logprobs))
