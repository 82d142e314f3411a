"""The live feed: one small JSON file per job that the job's own page polls, so that following a job costs
no Streamlit rerun.

A rerun of the Train page's live view costs the server 20-40 ms of Python and the learner's browser 80-95 ms
of JavaScript (React redrawing the page), five times a second while a run trains, every two seconds while a
job waits. The browser is on the same machine in this project's measurements, so that CPU is taken from the
trainer (``benchmarks/bench_live_chart.py``, ``benchmarks/load_test.py``). With a feed, the queue writes
``<folder>/<token>.json`` when something changes (at most every FEED_EVERY_S while losses arrive), Streamlit
serves the folder as static files (``server.enableStaticServing``), and the page's chart component fetches
the file a few times a second and repaints its canvas, with the progress line (or the place in line) and
the epoch's line above it. The page reruns only when its layout changes: the feed's ``mode``
(``jobs.Job.mode``: it starts, pauses, resumes, ends) differs from the mode it was drawn for.

The token is 128 random bits, so a feed can be read only by the page that was given its address; it holds a
run's losses and its place in the line, nothing else. Writes replace the file whole (write, then rename).
A feed that cannot be read (its file could not be written, and was removed) makes the page redraw itself
from the server every 10 failed fetches (ui/live_chart.js): slower, never stale. Each write carries a
sequence number: a training job's feed whose number stops moving for 10 s (a file that could be neither
written nor removed) makes the page redraw itself too. An ended job's feed is removed FEED_KEEP_S after.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path

FEED_EVERY_S = 0.2  # the newest losses are written at most this often per job
FEED_POLL_S = 0.24  # how often a page fetches its feed while its job trains (ui/live_chart.js): 4.2 a second
FEED_WAIT_POLL_S = 0.5  # and while it waits: its place changes once a run, its start is half a second away at most
FEED_KEEP_S = 30.0  # an ended job's feed is removed this long after its end: its page has redrawn by then


def new_token() -> str:
    return secrets.token_urlsafe(16)


class Feed:
    """The folder of feed files; ``url_prefix`` is where the browser finds it, relative to the app's address."""

    def __init__(self, folder: Path | str, url_prefix: str, clean: bool = True) -> None:
        """``clean``: remove every feed in the folder (a previous server's jobs are gone); a queue that replaces
        another in the same server passes False, as the jobs' pages may still read theirs."""
        self.folder = Path(folder)
        self.url_prefix = url_prefix.rstrip("/") + "/"
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.json*") if clean else ():
            old.unlink(missing_ok=True)

    def url(self, token: str) -> str:
        return f"{self.url_prefix}{token}.json"

    def publish(self, token: str, payload: dict) -> bool:
        """Replace the token's file by ``payload``; False if it could not be written."""
        path = self.folder / f"{token}.json"
        # the slot's thread and a page's thread may both write it: each through a file of its own
        tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(payload, separators=(",", ":"), allow_nan=False))
            os.replace(tmp, path)
            return True
        except (OSError, ValueError):
            return False

    def remove(self, token: str) -> None:
        try:
            (self.folder / f"{token}.json").unlink(missing_ok=True)
        except OSError:
            pass  # something else stands there: the page's reader stops trusting it (its sequence stops moving)
