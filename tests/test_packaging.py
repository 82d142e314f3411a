"""The Community Cloud Pipfile and requirements.txt ask for the same packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pipfile_matches_requirements():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    required = {
        re.split(r"[<>=!~ ]", line.split("#")[0].strip())[0].lower() for line in lines if line.split("#")[0].strip()
    }
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    assert set(pipfile["packages"]) == required
    assert pipfile["packages"]["torch"]["index"] == "pytorch-cpu"
