"""The queue <-> trainer protocol: every message survives a round trip; anything else is a ProtocolError."""

from __future__ import annotations

import pytest

from mnist_core import protocol as p

EXAMPLES = [
    p.Job("run-1", {"lr": 0.1, "epochs": 2}, "/runs", None, False),
    p.Job("find-1", {"optimiser": "ADAM"}, "/runs", "/data", True, task="lr-find"),
    p.Control("step", batches=3),
    p.Control("set", lr=0.01, momentum=0.5),
    p.Quit(),
    p.Ready(pid=123, datasets=["mnist"], jobs_done=2),
    p.Start(total_steps=320, steps_per_epoch=32, started_at=1.5, lr=0.1, momentum=None),
    p.Batches(first_step=5, losses=[2.3, float("nan")], epoch=1, step=6, train_seconds=0.4, images_done=768),
    p.Epoch(metrics={"epoch": 1, "test_acc": 0.5}),
    p.Knobs(step=7, lr=0.01, momentum=0.9),
    p.State(paused=True, step=7),
    p.LrCurve(
        lrs=[1e-6, 1e-3, 1.0], losses=[2.3, 1.0, 9.0], smoothed=[2.3, 1.5, 4.0], suggested_lr=1e-4, ending="exploded"
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
