"""The queue <-> trainer protocol: every message survives a round trip; anything else is a ProtocolError."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_core import protocol as p

MAPS = [
    (np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3), np.array([0.0, -1.5]), np.array([2.0, 0.25])),
    (np.full((1, 2, 2), 255, dtype=np.uint8), np.array([0.0]), np.array([1e-7])),
]

EXAMPLES = [
    p.Job("run-1", {"lr": 0.1, "epochs": 2}, "/runs", None, False),
    p.Job("find-1", {"optimiser": "ADAM"}, "/runs", "/data", True, task="lr-find"),
    p.Job("run-2", {}, "/runs", watch=17),
    p.Job("run-3", {}, "/runs", watch=[0, 255] * 392),
    p.Control("step", batches=3),
    p.Control("set", lr=0.01, momentum=0.5),
    p.Quit(),
    p.Ready(pid=123, datasets=["mnist"], jobs_done=2),
    p.Start(total_steps=320, steps_per_epoch=32, started_at=1.5, lr=0.1, momentum=None),
    p.Batches(first_step=5, losses=[2.3, float("nan")], epoch=1, step=6, train_seconds=0.4, images_done=768),
    p.Epoch(metrics={"epoch": 1, "test_acc": 0.5}),
    p.Knobs(step=7, lr=0.01, momentum=0.9),
    p.State(paused=True, step=7),
    p.Health(
        step=10,
        layers={
            "conv 1": {"grad_norm": 0.5, "update_ratio": 1e-3, "dead_share": 0.25, "weight_norm": 1.4},
            "dense": {"grad_norm": 0.1, "update_ratio": 2e-4, "dead_share": None, "weight_norm": 4.0},
        },
    ),
    p.Watch(step=12, probs=[0.1] * 10, maps=p.pack_maps(MAPS)),
    p.LrCurve(
        lrs=[1e-6, 1e-3, 1.0], losses=[2.3, 1.0, 9.0], smoothed=[2.3, 1.5, 4.0], suggested_lr=1e-4, ending="exploded"
    ),
    p.Replay(
        views=[
            {"step": 0, "probs": [0.1] * 10, "maps": p.pack_maps(MAPS)},
            {"step": 64, "probs": [0.1] * 10, "maps": []},
        ]
    ),
    p.Done(status="finished", message="Finished 2 epochs (64 steps).", run_dir="/runs/run-1"),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.kind)
def test_round_trip(message):
    line = p.encode(message)
    assert line.endswith("\n") and line.count("\n") == 1
    back = p.decode(line)
    assert type(back) is type(message)
    if isinstance(message, p.Batches):  # NaN != NaN: compare the rest, and that the NaN came back as one
        assert back.losses[0] == 2.3 and back.losses[1] != back.losses[1]
        back.losses = message.losses
    assert back == message


def test_every_kind_has_an_example():
    assert {m.kind for m in EXAMPLES} == set(p.KINDS)


@pytest.mark.parametrize(
    "line, words",
    [
        (p.encode(p.State(paused=True, step=3))[:20], "not a JSON line"),  # a partial line
        ('{"kind": "launch", "step": 1}\n', "unknown message kind"),
        ('{"step": 1}\n', "unknown message kind"),
        ("[1, 2]\n", "not a JSON object"),
        ('{"kind": "state", "paused": true}\n', "state:"),  # a field missing
        ('{"kind": "state", "paused": true, "step": 1, "extra": 2}\n', "unknown fields"),
        ('{"kind": "control", "action": "explode"}\n', "unknown action"),
        ("Downloading https://...\n", "not a JSON line"),  # a library that printed to stdout
    ],
)
def test_what_is_not_a_message(line, words):
    with pytest.raises(p.ProtocolError, match=words):
        p.decode(line)


def test_watched_maps_survive_the_wire():
    back = p.unpack_maps(p.decode(p.encode(p.Watch(step=1, probs=[1.0] + [0.0] * 9, maps=p.pack_maps(MAPS)))).maps)
    for (data, lo, hi), (data2, lo2, hi2) in zip(MAPS, back):
        assert data2.dtype == np.uint8 and np.array_equal(data, data2)
        np.testing.assert_allclose(lo, lo2) and np.testing.assert_allclose(hi, hi2)


@pytest.mark.parametrize(
    "maps, words",
    [
        ([{"shape": [2, 3, 3], "lo": [0, 0], "hi": [1, 1], "data": "AAAA"}], "with 3 values"),
        ([{"shape": [1, 1, 1], "lo": [0], "hi": [1], "data": "not base64!"}], "damaged maps"),
        ([{"shape": [1, 2], "lo": [0], "hi": [1], "data": "AA=="}], "shape must be"),
        ([{"shape": [300, 300, 1], "lo": [0] * 300, "hi": [1] * 300, "data": ""}], "more than 64,000"),
        ([{"lo": [0], "hi": [1], "data": "AA=="}], "damaged maps"),
        ("maps", "maps must be a list"),
    ],
)
def test_damaged_watch_is_refused(maps, words):
    line = p.encode(p.Watch(step=1, probs=[0.1] * 10, maps=maps))
    with pytest.raises(p.ProtocolError, match=words):
        p.decode(line)


@pytest.mark.parametrize(
    "views, words",
    [
        ("views", "views must be a list"),
        ([{"step": 0, "probs": [0.1] * 10, "maps": []}] * 65, "at most 64"),
        (["view"], "a view must be an object"),
        ([{"step": 0, "probs": [0.1] * 10}], "watch:"),  # maps missing
        (
            [{"step": 0, "probs": [0.1] * 10, "maps": [{"shape": [1, 1, 1], "lo": [0], "hi": [1], "data": "?"}]}],
            "damaged maps",
        ),
    ],
)
def test_damaged_replay_is_refused(views, words):
    with pytest.raises(p.ProtocolError, match=words):
        p.decode(p.encode(p.Replay(views=views)))


@pytest.mark.parametrize("watch", [-1, 2.5, "7", [0] * 783, [0] * 783 + [256], [0.5] * 784, True])
def test_a_digit_to_watch_is_an_index_or_784_pixels(watch):
    assert "the digit to watch must be" in p.check_watch(watch)
    with pytest.raises(p.ProtocolError, match="digit to watch"):
        p.decode(p.encode(p.Job("run-1", {}, "/runs", watch=watch)))
