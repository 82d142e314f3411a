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


def test_pipfile_and_requirements_ask_for_the_same_floors_and_python():
    floors = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        spec = line.split("#")[0].strip()
        if spec and not spec.startswith("-r"):
            name, version = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([\d.]+)", spec).groups()
            floors[name.lower()] = version
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    for name, spec in pipfile["packages"].items():
        version = spec["version"] if isinstance(spec, dict) else spec
        assert version == f">={floors[name]}", name
    assert tuple(map(int, floors["streamlit"].split("."))) >= (1, 59)  # persist_state
    assert pipfile["requires"]["python_version"] == "3.11"
