"""Presets: sets of knobs worth trying first, each with what to look for. The Train page offers them; each
one's promise is checked by tests/test_presets.py on the embedded sample."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .config import TrainConfig
from .i18n import N_

# The knobs a preset sets: the ones the tutorial turns. Seed, device and the recorder stay the learner's.
PRESET_KNOBS = ("lr", "epochs", "batch_size", "optimiser", "momentum", "loop")


@dataclass(frozen=True)
class Preset:
    name: str  # English, marked N_: shown with _()
    knobs: dict  # values of PRESET_KNOBS; the rest are the tutorial's defaults
    look_for: str  # what the learner should watch for (the same)

    def config(self) -> TrainConfig:
        """The tutorial's config with this preset's knobs."""
        return TrainConfig(**self.knobs)

    def values(self) -> dict:
        """Every knob of PRESET_KNOBS, as this preset sets it."""
        config = self.config()
        return {name: getattr(config, name) for name in PRESET_KNOBS}


PRESETS = (
    Preset(
        N_("The tutorial's settings"),
        {},
        N_(
            "Descent at lr 0.1, 10 epochs of batch 128, as in the article. The loss sits near 2.3 (a blind guess) "
            "for the first steps, then falls; about 90% test accuracy on the embedded sample."
        ),
    ),
    Preset(
        N_("Fast and good"),
        {"optimiser": "ADAM", "lr": 0.005, "epochs": 5, "batch_size": 32},
        N_(
            "ADAM, the article's better optimiser: the loss falls from the first batches, no plateau. Half the "
            "epochs of the tutorial and a better network (93% on the sample)."
        ),
    ),
    Preset(
        N_("Watch it diverge"),
        {"optimiser": "ADAM", "lr": 1.0, "epochs": 2},
        N_(
            "A learning rate far too high for ADAM: the loss jumps to hundreds of thousands in the first steps "
            "(the chart turns to a log axis), then falls back to 2.30 and stays. The jump killed every ReLU, so "
            "the run ends collapsed at chance level (10%)."
        ),
    ),
    Preset(
        N_("Dead ReLUs"),
        {"optimiser": "Descent", "lr": 2.0, "epochs": 3},
        N_(
            "No spike at all: after a few steps the loss sits at 2.30 = ln 10 and never moves, because every ReLU "
            "now outputs 0. Open the Training health tab while it trains: a layer's dead share reaches 100%."
        ),
    ),
)
assert {f.name for f in fields(TrainConfig)} >= set(PRESET_KNOBS)


def matching(values: dict) -> Preset | None:
    """The preset whose knobs are exactly ``values`` (a dict of at least PRESET_KNOBS), else None. Descent ignores
    momentum, so it does not count there."""
    for preset in PRESETS:
        wanted = preset.values()
        if all(
            values.get(k) == v for k, v in wanted.items() if not (k == "momentum" and wanted["optimiser"] == "Descent")
        ):
            return preset
    return None
