"""The agent file for OpenRLHF (``--train.agent_func_path examples/openrlhf_agent.py``): SatoriMath
episodes with Restart-and-Explore and Satori's reward, in Satori's setting (3072 new tokens).
OpenRLHF builds ``AgentExecutor()`` once per vLLM engine."""

from satori_env.integrations.openrlhf import SatoriAgentExecutor


class AgentExecutor(SatoriAgentExecutor):
    def __init__(self) -> None:
        super().__init__(
            restart_prob=0.5, reward="satori", bonus_scale=0.5, prompt_template="satori", max_new_tokens=3072
        )
