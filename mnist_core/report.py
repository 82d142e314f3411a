"""The accuracy report: overall figures, per-class table, confusion matrix and confident mistakes.

Everything is computed in inference mode, in chunks, on the model's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from .data import Dataset
from .model import TutorialCNN, as_input


@dataclass
class Predictions:
    """A model's output on one split: log-probabilities (N, 10) and the true labels (N,), on the CPU."""

    log_probs: torch.Tensor
    labels: torch.Tensor

    @property
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp()

    @property
    def predicted(self) -> torch.Tensor:
        return self.log_probs.argmax(1)  # the tutorial's onecold

    @property
    def loss(self) -> float:
        """Mean cross-entropy, as the tutorial's crossentropy(model(x), y)."""
        if len(self.labels) == 0:
            return float("nan")
        return float(F.nll_loss(self.log_probs, self.labels))

    @property
    def accuracy(self) -> float:
        """The tutorial's mean(onecold(ŷ) .== onecold(y))."""
        if len(self.labels) == 0:
            return float("nan")
        return float((self.predicted == self.labels).float().mean())


def predict(model: TutorialCNN, images: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Log-probabilities (N, 10) on the CPU for uint8 images (N, 28, 28)."""
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), chunk):
            x = as_input(images[start : start + chunk], device)
            out.append(F.log_softmax(model.logits(x), dim=1).cpu())
    return torch.cat(out) if out else torch.empty(0, 10)


def predictions(model: TutorialCNN, images: torch.Tensor, labels: torch.Tensor) -> Predictions:
    return Predictions(predict(model, images), labels.cpu())


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """(num_classes, num_classes) counts; row = true class, column = predicted class."""
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_table(cm: torch.Tensor, classes: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Precision, recall, accuracy (one-vs-rest) and support of each class from a confusion matrix."""
    cm = cm.double()
    total = cm.sum()
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    fp, fn = predicted - tp, support - tp
    tn = total - tp - fp - fn
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), nan)
    recall = torch.where(support > 0, tp / support.clamp_min(1), nan)
    accuracy = (tp + tn) / total if total > 0 else torch.full_like(tp, float("nan"))
    return pd.DataFrame(
        {
            "class": list(classes),
            "precision": precision.numpy(),
            "recall": recall.numpy(),
            "accuracy": accuracy.numpy(),
            "support": support.long().numpy(),
        }
    )


def confident_mistakes(preds: Predictions, k: int = 16) -> pd.DataFrame:
    """The ``k`` wrong predictions the model was most sure of: index, true, predicted, probability."""
    wrong = torch.nonzero(preds.predicted != preds.labels).flatten()
    confidence = preds.probs[wrong].max(1).values
    order = confidence.argsort(descending=True)[:k]
    idx = wrong[order]
    return pd.DataFrame(
        {
            "index": idx.numpy(),
            "true": preds.labels[idx].numpy(),
            "predicted": preds.predicted[idx].numpy(),
            "probability": preds.probs[idx].max(1).values.numpy(),
        }
    )


@dataclass
class Report:
    """The honest accuracy report of one model on one data set."""

    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    confusion: torch.Tensor  # test set, (10, 10)
    per_class: pd.DataFrame  # test set
    mistakes: pd.DataFrame  # test set, most confident first
    classes: tuple[str, ...]

    def to_dict(self) -> dict:
        """A JSON-ready summary (tables as lists)."""
        return {
            "train_loss": self.train_loss,
            "train_acc": self.train_acc,
            "test_loss": self.test_loss,
            "test_acc": self.test_acc,
            "confusion": self.confusion.tolist(),
            "per_class": self.per_class.to_dict(orient="records"),
            "mistakes": self.mistakes.to_dict(orient="records"),
            "classes": list(self.classes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        return cls(
            train_loss=data["train_loss"],
            train_acc=data["train_acc"],
            test_loss=data["test_loss"],
            test_acc=data["test_acc"],
            confusion=torch.tensor(data["confusion"]),
            per_class=pd.DataFrame(data["per_class"]),
            mistakes=pd.DataFrame(data["mistakes"]),
            classes=tuple(data["classes"]),
        )

    def summary(self) -> str:
        return (
            f"train accuracy {self.train_acc:.2%} (loss {self.train_loss:.4f}), "
            f"test accuracy {self.test_acc:.2%} (loss {self.test_loss:.4f})"
        )


def build_report(model: TutorialCNN, dataset: Dataset, k_mistakes: int = 16) -> Report:
    """Evaluate ``model`` on both splits of ``dataset``."""
    train = predictions(model, dataset.train_images, dataset.train_labels)
    test = predictions(model, dataset.test_images, dataset.test_labels)
    cm = confusion_matrix(test.labels, test.predicted, len(dataset.classes))
    return Report(
        train_loss=train.loss,
        train_acc=train.accuracy,
        test_loss=test.loss,
        test_acc=test.accuracy,
        confusion=cm,
        per_class=per_class_table(cm, dataset.classes),
        mistakes=confident_mistakes(test, k_mistakes),
        classes=dataset.classes,
    )


def worst_cell(confusion: torch.Tensor) -> tuple[int, int]:
    """(true, predicted) of the largest off-diagonal count: the model's most frequent confusion."""
    off = confusion.clone()
    off.fill_diagonal_(-1)
    return divmod(int(off.argmax()), confusion.shape[1])


def cell_indices(labels: torch.Tensor, predicted: torch.Tensor, true: int, guess: int, k: int = 24) -> list[int]:
    """Indices of the first ``k`` images whose label is ``true`` and prediction ``guess``."""
    return ((labels == true) & (predicted == guess)).nonzero().flatten()[:k].tolist()
