"""Entry point of the ``satori`` command: finds satori-env's ``agents`` package, then runs its CLI.

``agents`` is a generic top-level name; another installed distribution may provide one that
shadows ours. This shim (a top-level module, so that ``satori_env`` imports nothing of
``agents``) turns that into a clear message instead of ``No module named agents.cli``, and an
install without the agents' dependencies (``pip install satori-env``, the environment alone)
into the command that adds them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def main(argv: list[str] | None = None) -> int:
    missing = [name for name in ("torch", "tyro", "tensorboard") if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(
            f"satori: the command line needs the agents' dependencies ({', '.join(missing)} missing): "
            "pip install 'satori-env[agents]' (on a CPU machine install torch first, as the README says)"
        )
    try:
        agents = importlib.import_module("agents")
    except ImportError as error:
        sys.exit(f"satori: cannot import satori-env's 'agents' package ({error}); reinstall satori-env.")
    if not getattr(agents, "__satori_env__", False):
        sys.exit(
            f"satori: the 'agents' package found at {getattr(agents, '__file__', '?')} is not "
            "satori-env's: another installed distribution provides a top-level 'agents' package. "
            "Uninstall it or install satori-env in a fresh virtual environment."
        )
    from agents.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
