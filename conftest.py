"""Doctest collection of the package: a framework integration's module is collected only where
that framework is installed (verl, for one, lives in an environment of its own)."""

import importlib.util

_FRAMEWORKS = {"verl": "verl", "openenv": "openenv", "trl": "trl", "openrlhf": "openrlhf"}

collect_ignore = [
    f"satori_env/integrations/{name}.py"
    for name, module in _FRAMEWORKS.items()
    if importlib.util.find_spec(module) is None
]
