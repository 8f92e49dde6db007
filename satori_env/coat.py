"""Chain-of-Action-Thought (COAT): the meta-action tokens, prompt templates, and parsing.

A COAT trajectory is a sequence of steps, each opened by a meta-action token:

* ``<|continue|>``: the next reasoning step;
* ``<|reflect|>``: check the steps so far;
* ``<|explore|>``: abandon a flawed line and try another.

>>> trajectory = "<|continue|>2+3=5<|reflect|>2+3 is 5.<|continue|>The answer is \\\\boxed{5}."
>>> [(s.action, s.text) for s in split_steps(trajectory)]
[('continue', '2+3=5'), ('reflect', '2+3 is 5.'), ('continue', 'The answer is \\\\boxed{5}.')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CONTINUE",
    "EXPLORE",
    "META_ACTIONS",
    "PROMPT_TEMPLATES",
    "REFLECT",
    "CoatStep",
    "PromptTemplate",
    "count_actions",
    "get_template",
    "is_well_formed",
    "render_ansi",
    "split_steps",
]

CONTINUE = "<|continue|>"
REFLECT = "<|reflect|>"
EXPLORE = "<|explore|>"
META_ACTIONS: dict[str, str] = {"continue": CONTINUE, "reflect": REFLECT, "explore": EXPLORE}
"""Meta-action name -> token text."""

_TOKEN_TO_NAME = {token: name for name, token in META_ACTIONS.items()}
_META_SPLIT = re.compile("(" + "|".join(re.escape(token) for token in META_ACTIONS.values()) + ")")


@dataclass(frozen=True)
class PromptTemplate:
    """How a problem becomes the prompt the policy continues.

    Attributes:
        name: registry name.
        text: a format string with one ``{question}`` field.
        stop: extra strings that end an episode when the policy writes them as a single token
            (besides the tokenizer's EOS), e.g. ``"<|im_end|>"`` for chat templates.
    """

    name: str
    text: str
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            self.text.format(question="")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"prompt template {self.name!r} must be a format string whose only field is "
                f"{{question}} (write literal braces as {{{{ }}}}): {error}"
            ) from None
        if "{question}" not in self.text:
            raise ValueError(f"prompt template {self.name!r} has no {{question}} field: {self.text!r}")

    def format(self, question: str) -> str:
        return self.text.format(question=question)


PROMPT_TEMPLATES: dict[str, PromptTemplate] = {
    # Short, for tiny models on a CPU: every prompt token costs.
    "compact": PromptTemplate("compact", "Problem: {question}\nSolution:"),
    # The prompt of Satori's released models (Qwen2.5 chat format).
    "satori": PromptTemplate(
        "satori",
        "<|im_start|>user\nSolve the following math problem efficiently and clearly.\n"
        "Please reason step by step, and put your final answer within \\boxed{{}}.\n"
        "Problem: {question}<|im_end|>\n<|im_start|>assistant\n",
        stop=("<|im_end|>",),
    ),
}


def get_template(template: str | PromptTemplate) -> PromptTemplate:
    """A template by registry name, a :class:`PromptTemplate`, or a raw ``"...{question}..."``."""
    if isinstance(template, PromptTemplate):
        return template
    if not isinstance(template, str):
        raise TypeError(f"prompt_template must be a str or PromptTemplate, got {type(template).__name__}")
    if template in PROMPT_TEMPLATES:
        return PROMPT_TEMPLATES[template]
    if "{question}" in template:
        return PromptTemplate("custom", template)
    raise ValueError(
        f"unknown prompt template {template!r}: use one of {sorted(PROMPT_TEMPLATES)} "
        "or a format string containing {question}"
    )


@dataclass(frozen=True)
class CoatStep:
    """One step of a trajectory: the meta-action that opened it (None for text before the first
    meta-action) and the text that follows, up to the next meta-action."""

    action: str | None
    text: str


def split_steps(completion: str) -> list[CoatStep]:
    """Split a completion at its meta-action tokens (empty leading text is dropped)."""
    pieces = _META_SPLIT.split(completion)
    steps = [CoatStep(None, pieces[0])] if pieces[0] else []
    steps += [CoatStep(_TOKEN_TO_NAME[token], text) for token, text in zip(pieces[1::2], pieces[2::2])]
    return steps


def count_actions(completion: str) -> dict[str, int]:
    """How often each meta-action occurs: ``{"continue": n, "reflect": n, "explore": n}``."""
    return {name: completion.count(token) for name, token in META_ACTIONS.items()}


_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")


def is_well_formed(completion: str) -> bool:
    """Well-formed COAT: the response opens with a meta-action (leading whitespace aside), every
    step has content, and the last step holds exactly one ``\\boxed{}`` final answer.

    >>> is_well_formed("<|continue|>2+3=5<|continue|>The answer is \\\\boxed{5}.")
    True
    >>> is_well_formed("2+3=5, so \\\\boxed{5}"), is_well_formed("<|continue|><|continue|>\\\\boxed{5}")
    (False, False)
    """
    steps = split_steps(completion)
    if steps and steps[0].action is None:
        if steps[0].text.strip():
            return False
        steps = steps[1:]
    if not steps or any(not step.text.strip() for step in steps):
        return False
    return len(_BOX.findall(steps[-1].text)) == 1


_COLOURS = {"continue": "\x1b[32m", "reflect": "\x1b[33m", "explore": "\x1b[35m", None: ""}
_RESET = "\x1b[0m"


def render_ansi(prompt: str, completion: str, colour: bool = True, verdict: str | None = None) -> str:
    """Prompt, then one line per COAT step with its meta-action in brackets (coloured), then
    the ``verdict`` line of a finished episode, if given."""
    lines = [prompt.rstrip("\n"), "-" * 40]
    for step in split_steps(completion):
        label = f"[{step.action}]" if step.action else "[text]"
        if colour:
            label = f"{_COLOURS[step.action]}{label}{_RESET}"
        lines.append(f"{label} {step.text}")
    if verdict is not None:
        lines += ["-" * 40, verdict]
    return "\n".join(lines) + "\n"
