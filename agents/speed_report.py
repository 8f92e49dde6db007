"""The one shape every benchmark script reports in: ours against a baseline measured in the same run.

Each script prints its own detailed table and, with ``--json PATH``, writes its :class:`Ratio`
rows there; ``satori bench`` runs the scripts and prints all the rows as one table.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ratio:
    """One comparison. ``advantage`` is how many times better ours is (above 1: ours wins),
    whichever way the measure improves; ``target`` is the advantage the issue asks for."""

    benchmark: str
    measure: str
    ours: float
    baseline: float
    baseline_name: str
    lower_is_better: bool
    target: float | None = None

    @property
    def advantage(self) -> float:
        if self.lower_is_better:
            return self.baseline / self.ours if self.ours else float("inf")
        return self.ours / self.baseline if self.baseline else float("inf")

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.advantage >= self.target


def write_json(rows: list[Ratio], path: str | os.PathLike | None) -> None:
    """Write ``rows`` to ``path`` (nothing when ``path`` is None)."""
    if path is not None:
        Path(path).write_text(json.dumps([asdict(row) for row in rows], indent=1))


def read_json(path: str | os.PathLike) -> list[Ratio]:
    return [Ratio(**row) for row in json.loads(Path(path).read_text())]


def machine() -> str:
    """The machine in one line: CPU model and count, memory, GPU, Python and torch versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    software = f"Python {platform.python_version()}, torch {torch.__version__}"
    return f"{cpu}, {os.cpu_count()} CPU threads{memory}, {gpu}; {software}"


def markdown_table(rows: list[Ratio]) -> str:
    """All rows as one GitHub-markdown table."""
    lines = [
        "| benchmark | measure | ours | baseline | advantage | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        target = "-" if row.target is None else f">= {row.target:g}x"
        met = "-" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(
            f"| {row.benchmark} | {row.measure} | {row.ours:.4g} | {row.baseline:.4g} ({row.baseline_name}) | "
            f"{row.advantage:.2f}x | {target} | {met} |"
        )
    return "\n".join(lines)
