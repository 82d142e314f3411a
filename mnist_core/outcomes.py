"""The status words of every layer, as enums: how a run ended (``Ending``), where a job is (``JobState``, its
``Phase``); the judgement of a finished run, and each ending's plain label and colour. The engine, the queue,
the run folder, the CLI and the pages all read them here. Each member is its word (a ``StrEnum``), so run.json
and the feed hold plain strings.

A run that trains to its last epoch has *finished*, but that alone does not make it a success: with a
learning rate far too high (ADAM or Momentum at lr 1) every ReLU can die, and the network then gives the
same answer for every image. Its loss stays finite, so nothing diverges, and it ends at chance level
(10.00% on MNIST). Such a run is *collapsed*: finished, but no better than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch

from .i18n import N_


class Ending(StrEnum):
    """How a run can end."""

    FINISHED = "finished"
    STOPPED = "stopped"
    COLLAPSED = "collapsed"  # finished, but at chance level: every ReLU died
    DIVERGED = "diverged"  # the loss or the weights became NaN
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its process ended; saved at its last checkpoint
    CANCELLED = "cancelled"  # stopped before it trained


ENDINGS = tuple(Ending)
RUNNING = "running"  # a history's status while it trains, before it has an ending
DAMAGED = "damaged"  # the status a table of runs gives a run whose run.json cannot be read
# Each status as a word in a sentence or a table's cell, for display only (``_(STATUS_WORDS[status])``): the
# statuses themselves are machine words, saved in run.json and compared in code, and stay English.
STATUS_WORDS = {
    Ending.FINISHED: N_("finished"),
    Ending.STOPPED: N_("stopped"),
    Ending.COLLAPSED: N_("collapsed"),
    Ending.DIVERGED: N_("diverged"),
    Ending.FAILED: N_("failed"),
    Ending.INTERRUPTED: N_("interrupted"),
    Ending.CANCELLED: N_("cancelled"),
    RUNNING: N_("running"),
    DAMAGED: N_("damaged"),
}


class JobState(StrEnum):
    """Where a job of the queue is."""

    QUEUED = "queued"
    RUNNING = "running"  # running or paused
    DONE = "done"


class Phase(StrEnum):
    """What a running job does now; QUEUED and DONE as its state."""

    QUEUED = "queued"
    WARMING = "warming"  # its trainer process is still starting
    LOADING = "loading"  # the data goes to the device
    TRAINING = "training"
    DONE = "done"


# A network that gives one answer for every image scores that class's share of the test set: on MNIST's
# test set the shares run from 8.9% (5s) to 11.35% (1s), on Fashion-MNIST and the stratified sample they
# are 10%. Half of chance (5 points for 10 classes) covers any test set whose classes are within 1.5x of
# even, while every run of this project that learned anything is far above it (tutorial defaults: 87.8%).
CHANCE_MARGIN = 0.5  # as a fraction of chance (1 / classes)
# "The same answer for every image": a dead network's logits no longer depend on the input (measured: all
# 10,000 test answers alike). A barely trained network near chance still varies: its most common answer
# was 42-84% of the test images in runs of one epoch at lr 1e-5 or on 256 images, so it is not called collapsed.
ONE_ANSWER_SHARE = 0.99


def chance_level(classes: int) -> float:
    """The accuracy of guessing: 1 / classes."""
    return 1.0 / classes


def near_chance(test_acc: float, classes: int) -> bool:
    """True when ``test_acc`` is no better than chance plus the margin (a worse-than-chance one included)."""
    return test_acc <= chance_level(classes) * (1 + CHANCE_MARGIN)


def top_answer_share(predicted: torch.Tensor) -> float:
    """The share of images given the model's most common answer, from predicted classes (N,)."""
    if len(predicted) == 0:
        return 0.0
    return float(torch.bincount(predicted.long().flatten().cpu()).max()) / len(predicted)


def is_collapsed(test_acc: float, top_share: float, classes: int) -> bool:
    """A finished network that answers (almost) every image alike and scores no better than chance."""
    return top_share >= ONE_ANSWER_SHARE and near_chance(test_acc, classes)


def judge_ending(status: str, test_acc: float | None, top_share: float, classes: int) -> str:
    """The outcome of a run: "collapsed" for a finished run that collapsed to chance, else ``status`` unchanged."""
    if status == Ending.FINISHED and test_acc is not None and is_collapsed(test_acc, top_share, classes):
        return Ending.COLLAPSED
    return status


def collapse_note(message: str, test_acc: float, classes: int, optimiser: str, lr: float) -> str:
    """A collapsed run's ``message`` with what happened and what to do added: saved, hence in English (N_)."""
    return N_(
        "{message} But the test accuracy is {accuracy:.2%}, chance level for {classes} classes ({chance:.0%}): the "
        "network gives the same answer for every image (its ReLUs died). The learning rate {lr:g} is too high for "
        "{optimiser}: try one 10x lower."
    ).format(
        message=message, accuracy=test_acc, classes=classes, chance=chance_level(classes), lr=lr, optimiser=optimiser
    )


@dataclass(frozen=True)
class Outcome:
    """How a page shows one ending."""

    label: str  # plain words for a learner (English, marked N_: shown with _())
    colour: str  # a Streamlit colour name: green, orange, red, blue, violet, gray
    icon: str  # a Material icon


OUTCOMES: dict[str, Outcome] = {
    Ending.FINISHED: Outcome(N_("Finished"), "green", ":material/check_circle:"),
    Ending.COLLAPSED: Outcome(N_("Finished, but collapsed to chance"), "orange", ":material/trending_flat:"),
    Ending.STOPPED: Outcome(N_("Stopped"), "blue", ":material/stop_circle:"),
    Ending.DIVERGED: Outcome(N_("Diverged (the loss blew up)"), "red", ":material/error:"),
    Ending.FAILED: Outcome(N_("Failed"), "red", ":material/error:"),
    Ending.INTERRUPTED: Outcome(N_("Interrupted (saved at its last checkpoint)"), "violet", ":material/pause_circle:"),
    Ending.CANCELLED: Outcome(N_("Cancelled before it trained"), "gray", ":material/cancel:"),
}
UNKNOWN = Outcome(N_("Unknown"), "gray", ":material/help:")


def outcome(status: str) -> Outcome:
    """The label, colour and icon of ``status`` (an unknown word is shown as it is, in gray)."""
    return OUTCOMES.get(status) or Outcome(status or UNKNOWN.label, UNKNOWN.colour, UNKNOWN.icon)
