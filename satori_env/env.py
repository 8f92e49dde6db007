"""SatoriMathEnv: mathematical reasoning as a token-level MDP (Gymnasium API)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from satori_env._checks import brief
from satori_env.coat import META_ACTIONS, PromptTemplate, get_template, render_ansi
from satori_env.curriculum import Curriculum, make_curriculum
from satori_env.graders import judge
from satori_env.restart import RestartBuffer, RestartState, Trajectory
from satori_env.rewards import Episode, Scorer, make_reward
from satori_env.tasks import Problem, ProblemSource, make_source
from satori_env.tasks.sources import FixedProblems
from satori_env.tokenizer import add_coat_tokens, load_tokenizer, tokenizer_fingerprint
from satori_env.tokens import token_array
from satori_env.verifier import RULES, Verdict, Verifier, default_verifier, rule_verifier

__all__ = ["OBSERVATION_MODES", "SatoriMathEnv"]

OBSERVATION_MODES = ("box", "tokens")
_PROMPT_SAMPLE = 256  # problems drawn to size the prompt window of an unlimited source
_PROMPT_CACHE_SIZE = 65536  # encoded prompts kept, by question


class SatoriMathEnv(gym.Env):
    """Solve a math problem by writing a solution token by token, in Satori's COAT format.

    ## Description
    The state is the prompt (the problem in a prompt template) followed by the tokens written
    so far. The policy may open steps with the COAT meta-actions ``<|continue|>``,
    ``<|reflect|>`` and ``<|explore|>`` and should end with the final answer in ``\\boxed{}``.

    ## Action Space
    ``Discrete(n)``: one token id. ``n = len(tokenizer)``, less one when the padding token is
    the tokenizer's last id (as in the shipped tokenizer, and wherever the environment had to
    add a padding token): then every action in the space may be written. Otherwise padding is
    forbidden by :meth:`action_masks` (the sb3-contrib ``MaskablePPO`` convention). A forbidden
    or out-of-range action raises ``ValueError``. A model whose embedding has more rows than
    the tokenizer has ids (Qwen pads to a multiple of 128) uses its first ``n`` logits.

    ## Observation Space
    ``observation_mode="box"`` (default): ``Dict(tokens=Box(0, len(tokenizer) - 1, (width,), int64),
    length=Box(0, width, (1,), int64))``, the token ids right-padded with the padding id, so
    that Gymnasium's and stable-baselines3's checkers and policies work. ``"tokens"``: the ids so
    far as an int64 array of their own length (``Sequence(Discrete(len(tokenizer)), stack=True)``),
    for LLM agents that keep their own KV cache.
    ``width = max_prompt_tokens + max_new_tokens`` (at most ``context_limit``).

    ## Rewards
    0 on every step but the last; then the sum of the reward terms, each also in
    ``info["reward_terms"]``. Default "satori": the verifier's 0/1 minus 1 (0 when correct, -1
    when wrong), plus the reflection bonus of restarted episodes (+0.5 for fixing a wrong
    prefix, -0.5 for breaking a right one), plus sigmoid(scorer) when a ``scorer`` is given.
    A truncated episode is judged as it stands.

    ## Restart-and-Explore
    With a ``restart_buffer``, a share ``restart_prob`` of episodes starts from a restart state:
    the prompt followed by a prefix of an earlier trajectory ending in ``<|reflect|>``.
    ``reset(options={"restart_state": state})`` pins one. A drawn state too long for the prompt
    window never crashes the environment: it is skipped (a fresh problem instead, counted in
    ``info["restart"]["skipped"]`` and :attr:`restart_skips`, with one warning); give the buffer
    ``max_prefix_tokens`` to keep such states out of it.

    ## Episode End
    Terminated when the policy writes EOS (or a stop token of the prompt template). Truncated
    after ``max_new_tokens`` tokens, or when the context reaches ``context_limit``.

    ## Info
    On reset: problem id, source, level (-1 where the source has none), ``curriculum_arm`` (the
    curriculum's arm that served the problem; None without a curriculum, for restart states and
    pinned problems), ``prompt_length`` (the
    tokens of the state the policy continues, a restart prefix included), ``restart``
    (``from_restart``, ``reflect_status``, ``prefix_tokens``, ``skipped``: 1 when the state drawn
    from the buffer did not fit the prompt window and a fresh problem was served). At the end of an episode, also:
    the decoded ``completion`` (everything after the problem's prompt, a restart prefix
    included), the extracted ``answer``, the ``gold`` answer, ``correct``, ``verifier_status``,
    ``actions`` (count of each meta-action), ``reward_terms``, ``num_new_tokens``, and the
    ``trajectory`` (for :meth:`RestartBuffer.add_trajectories`).

    ## Arguments
    tasks: None (procedural arithmetic, levels 1-3), a source name such as "gsm8k:train", a
        ProblemSource (``sample(np_random)``), or an iterable of Problem.
    tokenizer: None (the small tokenizer shipped with the package), a tokenizer object, or a
        local path / hub id. Missing COAT tokens are added to it (resize your model).
    max_new_tokens: tokens the policy may write per episode (default 256).
    max_prompt_tokens: prompt window; None sizes it from the tasks (the longest prompt of a
        finite list; 1.5x the longest of 256 draws from an unlimited source).
    context_limit: total tokens the policy's model can attend to; None for no extra limit.
    prompt_template: "compact" (default), "satori", a PromptTemplate, or a string with {question}.
    observation_mode: "box" or "tokens".
    reward: None ("satori"), a preset name, a list or dict of terms, or a RewardSpec.
    scorer: an outcome reward model ``(problem, completion) -> float`` for the preference bonus.
    restart_buffer: a RestartBuffer to draw restart states from.
    restart_prob: share of episodes that start from a restart state (default 0.5).
    render_mode: None or "ansi".
    verifier: a Verifier; None uses the process-wide one; an answer rule's name
        (``"satori-release"``: Satori's release's own rule, see :mod:`satori_env.release_rule`)
        uses that rule's process-wide one.
    curriculum: None, a name ("uniform", "adaptive": over the arithmetic levels of ``tasks``,
        default 1-3) or a :class:`~satori_env.curriculum.Curriculum`: it chooses each reset's
        problem and learns from each episode's verdict (see :mod:`satori_env.curriculum`).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 30}

    def __init__(
        self,
        tasks: str | ProblemSource | Iterable[Problem] | None = None,
        tokenizer: Any = None,
        max_new_tokens: int = 256,
        max_prompt_tokens: int | None = None,
        context_limit: int | None = None,
        prompt_template: str | PromptTemplate = "compact",
        observation_mode: str = "box",
        reward: Any = None,
        scorer: Scorer | None = None,
        restart_buffer: RestartBuffer | None = None,
        restart_prob: float = 0.5,
        render_mode: str | None = None,
        verifier: Verifier | str | None = None,
        curriculum: str | Curriculum | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            _reject_unknown_arguments(unknown)
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"observation_mode must be one of {OBSERVATION_MODES}, got {observation_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
        self.tokenizer = load_tokenizer(tokenizer)
        add_coat_tokens(self.tokenizer)
        self.template = get_template(prompt_template)
        self.source = make_source(tasks)
        if curriculum is not None:
            self.source = make_curriculum(curriculum, None if tasks is None else self.source)
        self._arm: str | None = None
        self.reward_spec = make_reward(reward, scorer)
        self.observation_mode = observation_mode
        self.render_mode = render_mode
        if isinstance(verifier, str):
            verifier = rule_verifier(verifier)  # an answer rule by name: its process-wide verifier
        if verifier is not None and not all(
            callable(getattr(verifier, name, None)) for name in ("check", "check_batch")
        ):
            raise TypeError(
                f"verifier must be None (the process-wide one), an answer rule's name {list(RULES)} or a "
                f"satori_env.Verifier (an object with check and check_batch methods), got {type(verifier).__name__}"
            )
        self.verifier = verifier

        self.vocab_size = len(self.tokenizer)  # token ids, padding included
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.eos_id = int(self.tokenizer.eos_token_id)
        self.stop_ids = frozenset([self.eos_id, *(self._single_token_id(s) for s in self.template.stop)])
        self._meta_ids = {self._single_token_id(token): name for name, token in META_ACTIONS.items()}
        forbid_pad = self.pad_id not in self.stop_ids
        self.num_actions = self.vocab_size - 1 if forbid_pad and self.pad_id == self.vocab_size - 1 else self.vocab_size
        mask = np.ones(self.num_actions, dtype=bool)
        if forbid_pad and self.pad_id < self.num_actions:
            mask[self.pad_id] = False
        mask.flags.writeable = False
        self._action_mask = mask

        if not 0.0 <= restart_prob <= 1.0:
            raise ValueError(f"restart_prob must be in [0, 1], got {restart_prob!r}")
        self.restart_buffer, self.restart_prob = restart_buffer, float(restart_prob)

        if max_prompt_tokens is None:
            max_prompt_tokens = self._size_prompt_window()
            if restart_buffer is not None:  # room for a prefix: up to a whole response and <|reflect|>
                max_prompt_tokens += self.max_new_tokens + 1
        self.max_prompt_tokens = _positive_int("max_prompt_tokens", max_prompt_tokens)
        width = self.max_prompt_tokens + self.max_new_tokens
        if context_limit is not None:
            width = min(width, _positive_int("context_limit", context_limit))
        self.width = width

        self.action_space = spaces.Discrete(self.num_actions)
        if observation_mode == "box":
            self.observation_space = spaces.Dict(
                {
                    "tokens": spaces.Box(0, self.vocab_size - 1, shape=(width,), dtype=np.int64),
                    "length": spaces.Box(0, width, shape=(1,), dtype=np.int64),
                }
            )
        else:
            self.observation_space = spaces.Sequence(spaces.Discrete(self.vocab_size), stack=True)

        self.prompt_cache: dict[
            str, np.ndarray
        ] = {}  # encoded prompts by question; copies with this tokenizer and template may share it
        self._problem: Problem | None = None
        self._restart: RestartState | None = None
        self._tokens = np.empty(0, dtype=np.int64)
        self._length = self._prompt_length = self._start = 0
        self._actions = dict.fromkeys(META_ACTIONS, 0)
        self._done = True
        self._skipped = 0  # restart states drawn at the last reset that did not fit (0 or 1)
        self._verdict = None
        self.restart_skips = 0  # ... at every reset so far

    # -- Gymnasium API -----------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: on ``options["problem"]`` or ``options["restart_state"]`` if given,
        else on a restart state (with probability ``restart_prob``, when there is a restart
        buffer) or a problem drawn from the tasks (or the curriculum). ``options["curriculum_arm"]``
        with a pinned problem reports its outcome to the curriculum as that arm's (e.g. the
        copies of a rollout group that share the problem their first copy drew)."""
        super().reset(seed=seed)
        options = dict(options or {})
        problem, restart = options.pop("problem", None), options.pop("restart_state", None)
        arm = options.pop("curriculum_arm", None)
        if options:
            raise ValueError(
                f"unknown reset option(s) {sorted(options)}; valid options: ['problem', 'restart_state', "
                f"'curriculum_arm']"
            )
        if problem is not None and restart is not None:
            raise ValueError("pass options['problem'] or options['restart_state'], not both")
        if arm is not None and (
            problem is None or not isinstance(self.source, Curriculum) or arm not in self.source.arms
        ):
            arms = list(self.source.arms) if isinstance(self.source, Curriculum) else []
            raise ValueError(
                f"options['curriculum_arm'] tags a pinned options['problem'] with an arm of the env's curriculum "
                f"{arms}; got {arm!r}"
            )
        skipped = 0
        if restart is None and problem is None and self.restart_buffer is not None and len(self.restart_buffer):
            if self.np_random.random() < self.restart_prob:
                restart = self.restart_buffer.sample(self.np_random)
                if not self._fits(restart):  # the buffer never crashes the env: a fresh problem instead
                    self._warn_skipped(restart)
                    restart, skipped = None, 1
        self._arm = arm  # a pinned problem counts for the curriculum only when tagged with its arm
        if restart is not None:
            if not isinstance(restart, RestartState):
                raise TypeError(f"options['restart_state'] must be a RestartState, got {type(restart).__name__}")
            if restart.tokenizer_fingerprint not in (None, self.tokenizer_fingerprint):
                raise ValueError(
                    f"the restart state's prefix was written with another tokenizer (fingerprint "
                    f"{restart.tokenizer_fingerprint}; "
                    f"this environment's is {self.tokenizer_fingerprint}): its token ids would decode to other text"
                )
            problem = restart.problem
        elif problem is None and isinstance(self.source, Curriculum):
            self._arm, problem = self.source.draw(self.np_random)
        elif problem is None:
            problem = self.source.sample(self.np_random)
        elif not isinstance(problem, Problem):
            raise TypeError(f"options['problem'] must be a satori_env.Problem, got {type(problem).__name__}")
        prompt = self._encode_prompt(problem)
        prefix = np.asarray(restart.prefix if restart is not None else (), dtype=np.int64)
        start = len(prompt) + len(prefix)
        if start > self.max_prompt_tokens or start >= self.width:
            raise ValueError(
                f"the restart state of problem {problem.id} is {start} tokens with its prompt ({len(prefix)} of "
                f"prefix), more "
                f"than the prompt window ({self.max_prompt_tokens}) or the context ({self.width}); pass a larger "
                "max_prompt_tokens, or keep long states out of the buffer with RestartBuffer(max_prefix_tokens=...)"
            )
        if len(prefix):
            self.check_ids(prefix)
        self._problem, self._restart = problem, restart
        self._tokens = np.full(self.width, self.pad_id, dtype=np.int64)
        self._tokens[: len(prompt)] = prompt
        self._tokens[len(prompt) : start] = prefix
        self._prompt_length, self._start, self._length = len(prompt), start, start
        self._actions = dict.fromkeys(META_ACTIONS, 0)
        self._count_actions(prefix.tolist())
        self._done = False
        self._verdict: str | None = None  # the rendered verdict line, once the episode ends
        self._skipped = skipped
        return self.observation(), self._reset_info()

    def step(self, action):
        """Append one token; see the class docstring for rewards and the end of an episode."""
        token = self._check_action(action)
        return self._transition(self.append_tokens([token]))

    def step_tokens(self, tokens: Sequence[int] | np.ndarray):
        """Append many tokens at once; returns exactly what stepping them one by one returns
        at the last of them (the rewards of the others are 0).

        Every token is checked before any is applied: an invalid token, or a token after the one
        that ends the episode, raises ``ValueError`` and leaves the state unchanged.
        """
        return self._transition(self.append_tokens(self.check_tokens(tokens)))

    @property
    def running(self) -> bool:
        """An episode is under way (reset, and not yet ended)."""
        return not self._done

    @property
    def tokens_left(self) -> int:
        """Tokens the policy may still write before the episode is truncated (0 when it ended)."""
        if self._done:
            return 0
        return min(self.max_new_tokens - (self._length - self._start), self.width - self._length)

    def clip_to_episode(self, tokens: Sequence[int]) -> list[int]:
        """The longest prefix of ``tokens`` that :meth:`step_tokens` accepts: up to the first stop
        token, and no more than :attr:`tokens_left` (what stepping token by token would apply
        before the episode ends)."""
        ids = [int(t) for t in tokens[: self.tokens_left]]
        end = next((i for i, token in enumerate(ids) if token in self.stop_ids), None)
        return ids if end is None else ids[: end + 1]

    @property
    def tokens(self) -> np.ndarray:
        """The token ids of the current state (prompt, restart prefix, tokens written), a copy."""
        return self._tokens[: self._length].copy()

    @property
    def problem(self) -> Problem | None:
        """The problem of the current episode."""
        return self._problem

    @property
    def restart_state(self) -> RestartState | None:
        """The restart state the current episode started from, if any."""
        return self._restart

    @property
    def restart_buffer(self) -> RestartBuffer | None:
        """The buffer restart states are drawn from (None: no restarts); assigning one checks
        that it was built for this environment's tokenizer."""
        return self._restart_buffer

    @restart_buffer.setter
    def restart_buffer(self, buffer: RestartBuffer | None) -> None:
        if buffer is not None:
            self._check_restart_buffer(buffer)
        self._restart_buffer = buffer

    @property
    def tokenizer_fingerprint(self) -> str:
        """The fingerprint of the environment's tokenizer (restart states must carry the same)."""
        return tokenizer_fingerprint(self.tokenizer)

    @property
    def curriculum_arm(self) -> str | None:
        """The curriculum arm that served the current episode's problem, if any."""
        return self._arm

    def action_masks(self) -> np.ndarray:
        """Boolean mask over the action space: True where the token may be written (read-only).

        Boolean is sb3-contrib's ``MaskablePPO`` convention; Gymnasium's ``Discrete.sample(mask=...)``
        wants int8: ``env.action_space.sample(mask=env.unwrapped.action_masks().astype(np.int8))``.
        """
        return self._action_mask

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: pass render_mode='ansi' to gym.make")
            return None
        if self._problem is None:
            return ""
        return render_ansi(self.template.format(self._problem.question), self.completion_text(), verdict=self._verdict)

    # -- the MDP in pieces ------------------------------------------------------------------------
    # step() and step_tokens() are these, in order: check, append, and when the episode ended:
    # completion_text, a verdict, episode_record, the reward terms, finish_episode. The vector
    # env drives them itself to verify and score all copies' episodes in one batch.

    def check_tokens(self, tokens: Sequence[int] | np.ndarray) -> list[int]:
        """``tokens`` as ids the running episode accepts, or ``ValueError`` (``RuntimeError``
        when no episode runs): each id in the action space and allowed by :meth:`action_masks`,
        none after the one that ends the episode."""
        if self._done:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        ids = token_array(tokens, self.num_actions)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise TypeError(
                f"tokens must be a 1-D sequence of token ids, got {type(tokens).__name__} of shape {ids.shape}"
            )
        checked = self.check_ids(ids.astype(np.int64, copy=False))
        room = self.tokens_left
        ends = [i for i, token in enumerate(checked[:room]) if token in self.stop_ids]
        last = ends[0] if ends else room - 1
        if len(checked) > last + 1:
            raise ValueError(
                f"{len(checked) - last - 1} token(s) after the episode ends (at token {last} of {len(checked)}: "
                f"{'a stop token' if ends else 'the token limit'}); pass only the tokens up to the end"
            )
        return checked

    def check_ids(self, ids: np.ndarray) -> list[int]:
        """Token ids (any shape, int64) as a list, each in the action space and allowed by
        :meth:`action_masks`, or ``ValueError`` naming the first that is not."""
        bad = (ids < 0) | (ids >= self.num_actions)
        if bad.any():
            token = int(ids[bad][0])
            what = " (the padding token)" if token == self.pad_id else ""
            raise ValueError(f"token id {token}{what} is outside the action space Discrete({self.num_actions})")
        forbidden = ~self._action_mask[ids]
        if forbidden.any():
            raise ValueError(
                f"token id {int(ids[forbidden][0])} is the padding token; action_masks() lists the allowed ids"
            )
        return ids.tolist()

    def append_tokens(self, ids: Sequence[int]) -> tuple[bool, bool] | None:
        """Write checked ids (from :meth:`check_tokens`); ``(terminated, truncated)`` when the
        episode ended with them, else None."""
        start = self._length
        self._tokens[start : start + len(ids)] = ids
        self._length = start + len(ids)
        self._count_actions(ids)
        terminated = ids[-1] in self.stop_ids if len(ids) else False
        truncated = not terminated and (self._length - self._start >= self.max_new_tokens or self._length >= self.width)
        if terminated or truncated:
            self._done = True
            return terminated, truncated
        return None

    def completion_text(self) -> str:
        """The text after the problem's prompt (a restart prefix included), without a final stop
        token: what the verifier judges. Decoded on each call (an episode decodes it once)."""
        generated = self._tokens[self._prompt_length : self._length].tolist()
        if generated and generated[-1] in self.stop_ids:
            generated = generated[:-1]
        return self.tokenizer.decode(generated, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def episode_record(self, ended: tuple[bool, bool], completion: str, verdict: Verdict) -> Episode:
        """The episode that just ended, as reward terms see it, given its verdict."""
        return Episode(
            problem=self._problem,
            completion=completion,
            answer=verdict.predicted,
            correct=verdict.correct,
            verifier_status=verdict.status,
            actions=dict(self._actions),
            num_tokens=self._length - self._start,
            truncated=ended[1],
            reflect_status=0 if self._restart is None else self._restart.reflect_status,
        )

    def finish_episode(self, ended: tuple[bool, bool], episode: Episode, terms: dict[str, float]):
        """The last transition of an episode, ``(observation, reward, terminated, truncated,
        info)``, given the values of its reward terms; reports the outcome to the curriculum."""
        terminated, truncated = ended
        if self._arm is not None:  # an episode the curriculum served: tell it how it went
            self.source.update(self._arm, episode.correct)
        end = self._length - 1 if terminated else self._length  # without the stop token
        response = self._tokens[self._prompt_length : end].tolist()
        reward = float(sum(terms.values()))
        self._verdict = (
            f"{'terminated' if terminated else 'truncated'}: answer {episode.answer!r}, gold {self._problem.answer!r}, "
            f"{'correct' if episode.correct else 'wrong'} ({episode.verifier_status}); reward {reward:+.2f} = "
            + " ".join(f"{name} {value:+.2f}" for name, value in terms.items())
        )
        info = {
            **self._reset_info(),
            "completion": episode.completion,
            "answer": episode.answer,
            "gold": self._problem.answer,
            "correct": episode.correct,
            "verifier_status": episode.verifier_status,
            "actions": episode.actions,
            "reward_terms": terms,
            "num_new_tokens": episode.num_tokens,
            "trajectory": Trajectory(self._problem, tuple(response), episode.correct, finished=terminated),
        }
        return self.observation(), reward, terminated, truncated, info

    def observation(self):
        """The current observation (a copy), in the environment's ``observation_mode``."""
        if self.observation_mode == "tokens":
            return self._tokens[: self._length].copy()
        return {"tokens": self._tokens.copy(), "length": np.array([self._length], dtype=np.int64)}

    @property
    def token_buffer(self) -> np.ndarray:
        """The whole right-padded token buffer of the current state, ``(width,)``, read-only (no
        copy: a vector env stacks these into its batched observation)."""
        view = self._tokens.view()
        view.flags.writeable = False
        return view

    @property
    def length(self) -> int:
        """Tokens in the current state (prompt, restart prefix, tokens written)."""
        return self._length

    # -- helpers ---------------------------------------------------------------------------------

    def _transition(self, ended: tuple[bool, bool] | None):
        if ended is None:
            return self.observation(), 0.0, False, False, {}
        completion = self.completion_text()
        verifier = self.verifier or default_verifier()
        episode = self.episode_record(ended, completion, judge(verifier, [completion], [self._problem])[0])
        return self.finish_episode(ended, episode, self.reward_spec(episode))

    def _count_actions(self, ids: Sequence[int]) -> None:
        for token in ids:
            name = self._meta_ids.get(token)
            if name is not None:
                self._actions[name] += 1

    def _reset_info(self) -> dict[str, Any]:
        problem = self._problem
        restart = self._restart
        return {
            "problem_id": problem.id,
            "source": problem.source,
            "level": -1 if problem.level is None else problem.level,
            "curriculum_arm": self._arm,
            "prompt_length": self._start,
            "restart": {
                "from_restart": restart is not None,
                "reflect_status": 0 if restart is None else restart.reflect_status,
                "prefix_tokens": self._start - self._prompt_length,
                "skipped": self._skipped,
            },
        }

    def _encode_prompt(self, problem: Problem) -> np.ndarray:
        prompt = self.prompt_cache.get(problem.question)
        if prompt is None:
            if len(self.prompt_cache) >= _PROMPT_CACHE_SIZE:
                self.prompt_cache.clear()
            prompt = np.asarray(self.tokenizer.encode(self.template.format(problem.question)), dtype=np.int64)
            self.prompt_cache[problem.question] = prompt
        if len(prompt) > self.max_prompt_tokens or len(prompt) >= self.width:
            raise ValueError(
                f"the prompt of problem {problem.id} is {len(prompt)} tokens, more than the prompt "
                f"window ({self.max_prompt_tokens}) or the context ({self.width}); pass a larger "
                "max_prompt_tokens (or context_limit) to the environment"
            )
        return prompt

    def _size_prompt_window(self) -> int:
        """The longest prompt of a finite task list; 1.5x the longest of a sample otherwise (of
        every arm of a curriculum, which may serve only some arms at first)."""
        sources = list(self.source.arms.values()) if isinstance(self.source, Curriculum) else [self.source]
        rng = np.random.default_rng(0)
        window = 0
        for source in sources:
            if isinstance(source, FixedProblems):
                problems, margin = source.problems, 1.0
            else:
                problems, margin = [source.sample(rng) for _ in range(_PROMPT_SAMPLE)], 1.5
            texts = [self.template.format(p.question) for p in problems]
            window = max(window, int(np.ceil(max(len(ids) for ids in self.tokenizer(texts)["input_ids"]) * margin)))
        return window

    def _fits(self, restart: RestartState) -> bool:
        """Whether a drawn restart state fits the prompt window with its problem's prompt."""
        start = len(self._encode_prompt(restart.problem)) + len(restart.prefix)
        return start <= self.max_prompt_tokens and start < self.width

    def _warn_skipped(self, restart: RestartState) -> None:
        self.restart_skips += 1
        if self.restart_skips == 1:
            gym.logger.warn(
                f"a restart state drawn from the buffer does not fit this environment's prompt window "
                f"({self.max_prompt_tokens} tokens with the prompt) and was skipped (a fresh problem instead; counted "
                "in info['restart']['skipped']). Restarts of restarted episodes grow: keep such states out of the "
                f"buffer with RestartBuffer(max_prefix_tokens={self.max_new_tokens + 1}) or widen max_prompt_tokens"
            )

    def _check_restart_buffer(self, buffer: RestartBuffer) -> None:
        if not isinstance(buffer, RestartBuffer):
            raise TypeError(f"restart_buffer must be a satori_env.RestartBuffer, got {type(buffer).__name__}")
        ids = {name: token for token, name in self._meta_ids.items()}
        if buffer.meta_token_ids != ids:
            raise ValueError(
                f"the restart buffer was built for a tokenizer whose COAT token ids are {buffer.meta_token_ids}; "
                f"this environment's are {ids}"
            )
        if buffer.tokenizer_fingerprint not in (None, self.tokenizer_fingerprint):
            raise ValueError(
                f"the restart buffer was built for another tokenizer (fingerprint {buffer.tokenizer_fingerprint}; this "
                f"environment's is {self.tokenizer_fingerprint}): its states' token ids would decode to other text. "
                "Build the buffer with the environment's tokenizer: RestartBuffer(env.unwrapped.tokenizer)"
            )

    def _single_token_id(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{text!r} must be a single token of the tokenizer, but encodes to {ids}")
        return ids[0]

    def _check_action(self, action) -> int:
        if self._done:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise TypeError(f"an action is one token id (an int), got {type(action).__name__}: {brief(action)}")
        return self.check_ids(token_array([action], self.num_actions).astype(np.int64))[0]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _reject_unknown_arguments(unknown: dict[str, Any]) -> None:
    import inspect

    valid = [name for name in inspect.signature(SatoriMathEnv.__init__).parameters if name not in ("self", "unknown")]
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(f"unknown argument(s) {', '.join(hints)} for SatoriMathEnv; valid arguments: {', '.join(valid)}")
