"""SatoriMath inside the trainers people run at scale, one module per framework, each an optional
extra: :mod:`satori_env.integrations.trl` (TRL's ``GRPOTrainer``), :mod:`.verl` (verl's agent
loop, data and curriculum), :mod:`.openrlhf` (OpenRLHF's agent interface), :mod:`.openenv` (an
OpenEnv server and client). Token ids cross every boundary, never re-tokenised text; a restart
state's prefix is part of the prompt, so it is never trained on; every reward term is reported.

:mod:`.episodes` holds what they share: starting episodes (a problem, or a restart state of it),
applying a framework's generated ids, and the per-term rewards of the result.
"""
