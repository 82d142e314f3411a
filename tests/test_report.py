"""The report on small cases computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import make_idx_folder

from mnist_core.config import TrainConfig
from mnist_core.data import DataError
from mnist_core.report import (
    CLASS,
    FOUND,
    GUESSES,
    GUESSES_RIGHT,
    IMAGES,
    RIGHT,
    Predictions,
    build_report,
    confident_mistakes,
    confusion_matrix,
    per_class_table,
    run_test_set,
)
from mnist_core.train import train


def test_confusion_matrix_by_hand():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(labels, predicted, num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_per_class_table_by_hand():
    cm = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    table = per_class_table(cm, ("a", "b", "c"))
    assert list(table.columns) == [CLASS, IMAGES, RIGHT, FOUND, GUESSES, GUESSES_RIGHT]
    # class a: 2 images, 1 right -> found 1/2; guessed twice (one a, one c), 1 right -> 1/2
    a = table.iloc[0]
    assert (a[IMAGES], a[RIGHT], a[FOUND], a[GUESSES], a[GUESSES_RIGHT]) == pytest.approx((2, 1, 0.5, 2, 0.5))
    b = table.iloc[1]  # 2 images, both right; guessed 3 times -> 2/3 of the guesses right
    assert (b[FOUND], b[GUESSES_RIGHT]) == pytest.approx((1.0, 2 / 3))
    c = table.iloc[2]  # 2 images, 1 right; guessed once, rightly
    assert (c[FOUND], c[GUESSES_RIGHT], c[IMAGES]) == pytest.approx((0.5, 1.0, 2))


def test_share_found_is_not_one_vs_rest_accuracy():
    """The issue's 3s: 58% of them right reads 0.58, not the 0.958 of a one-vs-rest accuracy."""
    cm = torch.zeros(10, 10, dtype=torch.long)
    cm.fill_diagonal_(100)
    cm[3, 3], cm[3, 5] = 58, 42  # 100 threes, 58 right
    row = per_class_table(cm, tuple("0123456789")).iloc[3]
    assert row[FOUND] == pytest.approx(0.58) and row[GUESSES_RIGHT] == pytest.approx(1.0)


def test_class_never_guessed_has_no_precision():
    table = per_class_table(torch.tensor([[2, 0], [1, 0]]), ("x", "y"))
    assert math.isnan(table.iloc[1][GUESSES_RIGHT]) and table.iloc[1][FOUND] == 0 and table.iloc[1][GUESSES] == 0


def test_predictions_accuracy_loss_and_mistakes():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    preds = Predictions(probs.log(), torch.tensor([0, 1, 1, 0]))
    assert preds.accuracy == 0.5
    expected_loss = -(math.log(0.9) + math.log(0.8) + math.log(0.3) + math.log(0.4)) / 4
    assert preds.loss == pytest.approx(expected_loss, rel=1e-5)
    mistakes = confident_mistakes(preds, k=5)
    assert mistakes["index"].tolist() == [2, 3]  # 0.7 sure, then 0.6 sure
    assert mistakes["true"].tolist() == [1, 0] and mistakes["predicted"].tolist() == [0, 1]
    assert mistakes["probability"].tolist() == pytest.approx([0.7, 0.6])


def test_build_report_agrees_with_training_metrics(blobs):
    trainer = train(TrainConfig(epochs=3, batch_size=32, optimiser="ADAM", lr=0.01), blobs)
    report = build_report(trainer.model, blobs)
    assert report.test_acc == pytest.approx(trainer.history.epochs[-1].test_acc)
    assert report.test_loss == pytest.approx(trainer.history.epochs[-1].test_loss, rel=1e-4)
    assert int(report.confusion.sum()) == blobs.n_test
    assert report.per_class[IMAGES].sum() == blobs.n_test
    assert report.confusion.diag().sum() / blobs.n_test == pytest.approx(report.test_acc)
    again = type(report).from_dict(report.to_dict())
    assert torch.equal(again.confusion, report.confusion) and again.test_acc == report.test_acc


def test_a_run_finds_its_own_test_images(blobs, sample, tmp_path):
    """A run remembers where its test images came from: the loaded copy, the sample, or its folder."""
    assert run_test_set("mnist", "x", blobs.source, blobs.n_test, False, [sample, blobs]) is blobs
    again = run_test_set("mnist", sample.title, sample.source, sample.n_test, False, [blobs])  # server has another
    assert again.n_test == 1_000 and torch.equal(again.test_images, sample.test_images)
    arrays = make_idx_folder(tmp_path / "digits", n_train=30, n_test=12)
    source = f"local folder {tmp_path / 'digits'}"
    local = run_test_set("mnist", "MNIST", source, 12, False, [sample])
    assert local.test_images.numpy().tolist() == arrays["t10k-images-idx3-ubyte"].tolist()
    with pytest.raises(DataError, match="does not have"):  # an archive's folder is not followed
        run_test_set("mnist", "MNIST", source, 12, True, [sample])
    with pytest.raises(DataError, match="cannot be read now"):
        run_test_set("mnist", "MNIST", f"local folder {tmp_path / 'gone'}", 12, False, [sample])
    with pytest.raises(DataError, match="now has 12"):
        run_test_set("mnist", "MNIST", source, 99, False, [sample])
