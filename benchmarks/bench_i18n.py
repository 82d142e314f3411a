"""What a language costs: the catalog's first load, a message, a saved message, and a Train page run in each language.

Run by hand, never by the tests:
    python benchmarks/bench_i18n.py [--runs 5]

The Train page is run with Streamlit's AppTest (no browser): the median of ``--runs`` reruns after a first one,
in English and in Simplified Chinese.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mnist_core import i18n  # noqa: E402


def timed(call, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat


def page_seconds(language: str, runs: int) -> float:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.session_state["language"] = language
    with i18n.using(language):  # AppTest formats radio options again in this thread
        at.run()
        at.switch_page("app_pages/3_Train.py").run()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import os

    os.environ["MNIST_RUNS_DIR"] = tempfile.mkdtemp(prefix="bench-i18n-")
    start = time.perf_counter()
    i18n.translations("zh_CN")
    compile_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    i18n._patterns("zh_CN")
    patterns_ms = (time.perf_counter() - start) * 1000
    saved = "Reached this server's limit of 8,000,000 images per run"
    with i18n.using("zh_CN"):
        message_us = timed(lambda: i18n._("Start training"), 10_000) * 1e6
        stored_ms = timed(lambda: i18n.stored(saved), 200) * 1000
        unknown_ms = timed(lambda: i18n.stored("a sentence no catalog has"), 200) * 1000
    messages = sum(1 for m in i18n.extract() if m.id)
    print(f"{messages} messages; zh_CN catalog compiled in {compile_ms:.0f} ms, its patterns in {patterns_ms:.0f} ms")
    print(f"_(): {message_us:.2f} us; stored(): {stored_ms:.3f} ms (a catalog message), {unknown_ms:.3f} ms (none)")
    for language in ("en", "zh_CN"):
        print(f"Train page run ({language}): {page_seconds(language, args.runs) * 1000:.0f} ms (median)")


if __name__ == "__main__":
    main()
