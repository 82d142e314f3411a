"""The command line in Simplified Chinese: from ``--lang`` or the environment's locale; the lines scripts read
stay as they are in every language."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHINESE = re.compile("[\u4e00-\u9fff]")
LOCALE = ("LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES")  # what the command line reads its language from


def cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if k not in ("MNIST_DATA_DIR", "MNIST_RUNS_DIR", *LOCALE)}
    return subprocess.run(
        [sys.executable, "-m", "mnist_core", *args],
        cwd=ROOT,
        env=keep | {"LANG": "C.UTF-8"} | extra_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_inspect_speaks_chinese():
    out = cli("inspect", "--lang", "zh_CN")
    assert out.returncode == 0, out.stderr
    assert CHINESE.search(out.stdout), out.stdout  # the table's headings
    assert "Conv((5,5), 1=>8, pad=2, stride=2, relu)" in out.stdout  # code stays code
    assert "15,594" in out.stdout and "206,560" in out.stdout


def test_help_and_errors_speak_the_language_of_the_flag_else_the_environment():
    helped = cli("--lang", "zh_CN", "--help")
    assert helped.returncode == 0 and CHINESE.search(helped.stdout)
    assert "the whole tutorial without the browser" not in helped.stdout
    for args, env in ((["--lang", "zh_CN"], {}), ([], {"LANG": "zh_CN.UTF-8"}), ([], {"LANGUAGE": "zh_CN:en"})):
        out = cli("inspect", "--dropout", "5", *args, **env)
        assert out.returncode == 2 and CHINESE.search(out.stderr) and "error:" not in out.stderr, (args, env)
    for args, env in ((["--lang", "en"], {"LANG": "zh_CN.UTF-8"}), ([], {})):
        out = cli("inspect", "--dropout", "5", *args, **env)
        assert out.returncode == 2 and "error:" in out.stderr and not CHINESE.search(out.stderr), (args, env)


def test_the_line_scripts_read_is_the_same_in_chinese():
    out = cli("--lang", "zh_CN", "lr-find", "--offline", "--steps", "30")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"suggested lr: \S+", out.stdout.strip().splitlines()[-1])
    assert CHINESE.search(out.stdout)
