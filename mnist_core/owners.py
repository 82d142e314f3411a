"""Who a saved run belongs to, what a visitor sees, and how much disk each visitor may use.

A run trained or imported in the app stores ``owner_id(secret)``: a one-way hash of its browser's secret,
never the secret. Runs made outside the app (the CLI, tune workers) have no owner and are shared, and an
owner may share a run of theirs; every visitor sees shared runs, read-only. Disk is bounded twice: per owner
(``MNIST_OWNER_DISK_MB``) and for the server (``MNIST_RUNS_DISK_MB``); when the server is full, the oldest
runs of owners not seen for ``MNIST_IDLE_OWNER_S`` go first.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import settings
from .i18n import _
from .outcomes import Ending

if TYPE_CHECKING:
    from .run_schema import RunMeta

OWNER_ID = re.compile(r"[0-9a-f]{32}")
SEEN_FOLDER = ".owners"  # under the runs folder: one empty file per owner, its mtime when last seen


class QuotaError(Exception):
    """A run could not be stored: a visitor's or the server's disk budget is used up. The message says which."""


def owner_id(secret: str) -> str:
    """The id a run stores for the browser whose secret is ``secret``; "" for none."""
    return hashlib.sha256(b"mnist-owner\0" + secret.encode()).hexdigest()[:32] if secret else ""


def is_mine(meta: RunMeta, viewer: str) -> bool:
    return bool(viewer) and meta.owner == viewer


def is_shared(meta: RunMeta) -> bool:
    """Made outside the app, or shared by its owner: every visitor may see it, none but its owner change it."""
    return not meta.owner or meta.shared


def visible(meta: RunMeta | None, viewer: str | None) -> bool:
    """Whether ``viewer`` (an owner id; None: the command line, which sees everything) may see the run."""
    if viewer is None:
        return True
    return meta is not None and (is_shared(meta) or is_mine(meta, viewer))


def default_run(runs: list[tuple[Path, RunMeta | None]], viewer: str, dataset: str) -> str | None:
    """The run a page opens on: the viewer's newest, else the best finished shared run of ``dataset``
    (never a collapsed, diverged or stopped one), else None."""
    mine = [(m.saved_at, p.name) for p, m in runs if m is not None and is_mine(m, viewer)]
    if mine:
        return max(mine)[1]
    shared = [
        (m.test_acc or 0.0, m.saved_at, p.name)
        for p, m in runs
        if m is not None and is_shared(m) and m.status == Ending.FINISHED and m.config.dataset == dataset
    ]
    return max(shared)[2] if shared else None


# --------------------------------------------------------------------------- disk


def folder_bytes(path: Path) -> int:
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def mark_seen(viewer: str, root: Path) -> None:
    """Note that ``viewer`` is using the app now: their runs are not the first to go when the disk is full."""
    if not OWNER_ID.fullmatch(viewer or ""):
        return
    folder = root / SEEN_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / viewer).touch()
    except OSError:
        pass  # a read-only runs folder stores nothing anyway


def last_seen(owner: str, root: Path) -> float:
    try:
        return (root / SEEN_FOLDER / owner).stat().st_mtime
    except OSError:
        return 0.0


def _mb(n: float) -> str:
    return _("{mb:,.1f} MB").format(mb=n / 1e6)


def _stored(root: Path) -> list[tuple[Path, str, float, int]]:
    """(folder, owner, saved_at, bytes) of every run folder under ``root``. Only what accounting needs, read
    without the run schema's checks: this runs on every Start, and parsing each run.json in full cost 22 ms
    at 200 runs; a run.json that cannot be read counts as no one's (never deleted)."""
    out = []
    if not root.is_dir():
        return out
    for folder in root.iterdir():
        meta = folder / "run.json"
        if folder.name.endswith(".partial") or not meta.is_file():
            continue
        try:
            with meta.open("rb") as file:
                data = json.loads(file.read(200_000))
            owner = data.get("owner", "") if isinstance(data, dict) else ""
            saved = float(data.get("saved_at", 0.0)) if isinstance(data, dict) else 0.0
        except (OSError, ValueError, TypeError):
            owner, saved = "", 0.0
        owner = owner if isinstance(owner, str) and OWNER_ID.fullmatch(owner) else ""
        out.append((folder, owner, saved, folder_bytes(folder)))
    return out


def make_room(root: Path, viewer: str, incoming: int) -> None:
    """Make sure ``incoming`` more bytes of ``viewer``'s fit under ``root``, or raise QuotaError saying what to do.

    The server's budget, when full, is freed from the oldest runs of owners not seen for ``MNIST_IDLE_OWNER_S``;
    runs without an owner are never deleted.
    """
    runs = _stored(root)
    if viewer:
        quota = settings.get("MNIST_OWNER_DISK_MB") * 1e6
        used = sum(size for _, owner, _, size in runs if owner == viewer)
        if used + incoming > quota:
            raise QuotaError(
                _(
                    "Your runs use {used} of the {quota} each visitor may keep on this server. Delete some of your "
                    "runs on the Runs page, then try again."
                ).format(used=_mb(used), quota=_mb(quota))
            )
    total_budget = settings.get("MNIST_RUNS_DISK_MB") * 1e6
    total = sum(size for *_, size in runs)
    if total + incoming <= total_budget:
        return
    idle_before = time.time() - settings.get("MNIST_IDLE_OWNER_S")
    evictable = sorted(
        (saved, folder, size)
        for folder, owner, saved, size in runs
        if owner and owner != viewer and last_seen(owner, root) < idle_before
    )
    for _saved, folder, size in evictable:
        if total + incoming <= total_budget:
            break
        shutil.rmtree(folder, ignore_errors=True)
        total -= size
    if total + incoming > total_budget:
        raise QuotaError(
            _(
                "This server's disk for runs is full ({used} of {budget}). Try again later, or delete some of your "
                "runs on the Runs page."
            ).format(used=_mb(total), budget=_mb(total_budget))
        )
