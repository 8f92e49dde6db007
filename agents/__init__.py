"""satori-env agents: policies, generation engines, RL algorithms and the ``satori`` CLI.

``agents`` is a generic top-level name that other distributions use too; the ``satori``
command checks :data:`__satori_env__` and names the clash instead of failing obscurely.
"""

__satori_env__ = True
