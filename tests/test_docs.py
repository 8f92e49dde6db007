"""The documentation site builds in strict mode (every link, anchor and API reference resolves),
and the README's links into it point at pages that exist. Code examples in README.md and
docs/*.md are run by pytest's doctest collection (pyproject: --doctest-glob=*.md)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_site_builds_in_strict_mode(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "satori_env" / "index.html").read_text()
    assert "SatoriMathEnv" in api and "RestartBuffer" in api  # the reference is generated from docstrings
    assert "Architecture" in (tmp_path / "site" / "architecture" / "index.html").read_text()


def test_readme_links_into_the_docs_resolve():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(targets) >= 15
    assert all((ROOT / target).is_file() for target in targets), [t for t in targets if not (ROOT / t).is_file()]
