"""The report on small cases computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mnist_core.report import Predictions, build_report, confident_mistakes, confusion_matrix, per_class_table
from mnist_core.train import TrainConfig, train


def test_confusion_matrix_by_hand():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(labels, predicted, num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_per_class_table_by_hand():
    cm = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    table = per_class_table(cm, ("a", "b", "c"))
    # class a: tp 1, predicted 2, support 2 -> precision 1/2, recall 1/2; tn = 6 - 1 - 1 - 1 = 3 -> acc 4/6
    a = table.iloc[0]
    assert (a["precision"], a["recall"], a["accuracy"], a["support"]) == pytest.approx((0.5, 0.5, 4 / 6, 2))
    b = table.iloc[1]  # tp 2, predicted 3, support 2 -> precision 2/3, recall 1
    assert (b["precision"], b["recall"]) == pytest.approx((2 / 3, 1.0))
    c = table.iloc[2]  # tp 1, predicted 1 -> precision 1, recall 1/2
    assert (c["precision"], c["recall"], c["support"]) == pytest.approx((1.0, 0.5, 2))


def test_class_never_predicted_has_no_precision():
    table = per_class_table(torch.tensor([[2, 0], [1, 0]]), ("x", "y"))
    assert math.isnan(table.iloc[1]["precision"]) and table.iloc[1]["recall"] == 0


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
    assert report.per_class["support"].sum() == blobs.n_test
    assert report.confusion.diag().sum() / blobs.n_test == pytest.approx(report.test_acc)
    again = type(report).from_dict(report.to_dict())
    assert torch.equal(again.confusion, report.confusion) and again.test_acc == report.test_acc
