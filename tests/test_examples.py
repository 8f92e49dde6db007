"""The example scripts run and show what they claim."""

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scripted_agents_get_the_top_and_bottom_rewards(capsys):
    results = load("scripted_agents").main(episodes=16)
    assert results["oracle"]["mean reward"] == 0.0 and results["oracle"]["accuracy"] == 1.0
    assert results["self-correcting"]["mean reward"] == 0.0 and results["self-correcting"]["reflect / episode"] == 1.0
    assert results["wrong"]["mean reward"] == -1.0 and results["wrong"]["accuracy"] == 0.0
    assert "| oracle |" in capsys.readouterr().out


def test_random_agent_plays_whole_episodes(capsys):
    returns = load("random_agent").main(episodes=2, seed=0)
    assert returns == [-1.0, -1.0]  # random tokens do not solve arithmetic
    assert capsys.readouterr().out.count("episode ") == 2



def test_reward_shaping_table(capsys):
    table = load("reward_shaping").main()
    totals = {name: {preset: sum(terms.values()) for preset, terms in row.items()} for name, row in table.items()}
    assert totals["correct"]["satori"] == 0.0 and totals["wrong answer"]["satori"] == -1.0
    assert totals["restart from wrong, fixed"]["satori"] == 0.5 and totals["restart from right, broken"]["satori"] == -1.5
    assert table["no COAT format"]["custom"]["format"] == -0.5 and table["self-correcting"]["custom"]["checked"] == 0.25
    assert [totals[name]["binary"] for name in table] == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert "| restart from wrong, fixed |" in capsys.readouterr().out
