"""The accuracy report: overall figures, per-class table, confusion matrix and confident mistakes.

Everything is computed in inference mode, in chunks, on the model's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from .data import SAMPLE_NAME, DataError, Dataset, load_idx_folder, load_sample
from .i18n import N_, _, stored
from .model import TutorialCNN, as_input, evaluating


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
    with torch.inference_mode(), evaluating(model):
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


# The per-class table's columns, named for what they are. "share found" is the tutorial's plain accuracy
# restricted to one class's images (its recall); "guesses right" is the share of the model's guesses of that
# class that were right (its precision). One-vs-rest accuracy is not shown: with ten classes it is about 0.9
# even for a class the model never gets right. The names are the table's keys (report.json holds them): English,
# shown with _().
CLASS, IMAGES, RIGHT, FOUND, GUESSES, GUESSES_RIGHT = (
    N_("class"),
    N_("test images"),
    N_("right"),
    N_("share found (recall)"),
    N_("guessed as it"),
    N_("guesses right (precision)"),
)


def per_class_table(cm: torch.Tensor, classes: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Per class, from a confusion matrix: its test images, how many were right, the share found (recall),
    how often the model guessed it and the share of those guesses that were right (precision).

    A share with nothing to divide by (a class never guessed, or without test images) is NaN: the page
    says "no guesses" or "no images" there.
    """
    cm = cm.double()
    tp = cm.diag()
    support = cm.sum(1)
    guessed = cm.sum(0)
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return pd.DataFrame(
        {
            CLASS: list(classes),
            IMAGES: support.long().numpy(),
            RIGHT: tp.long().numpy(),
            FOUND: torch.where(support > 0, tp / support.clamp_min(1), nan).numpy(),
            GUESSES: guessed.long().numpy(),
            GUESSES_RIGHT: torch.where(guessed > 0, tp / guessed.clamp_min(1), nan).numpy(),
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
        return _(
            "train accuracy {train_acc:.2%} (loss {train_loss:.4f}), "
            "test accuracy {test_acc:.2%} (loss {test_loss:.4f})"
        ).format(train_acc=self.train_acc, train_loss=self.train_loss, test_acc=self.test_acc, test_loss=self.test_loss)


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


_FOLDER_SOURCES = ("local folder ", "downloaded to ")  # how data.py names a data set read from a folder


def run_test_set(
    name: str, title: str, source: str, n_test: int, imported: bool, loaded: list[Dataset] | tuple[Dataset, ...] = ()
) -> Dataset:
    """The data set whose test images a run was measured on (its run.json's name, title and source).

    One already ``loaded`` serves if it is the same copy (same source, or for a run that did not record one,
    the same number of test images); else the run's own source is read again: the embedded sample, or the
    folder it names. An imported run's folder is never followed (the archive says it, not this server).
    Raises ``DataError`` saying what is missing when the images are not here.
    """
    for dataset in loaded:
        if dataset.name == name and dataset.n_test == n_test and (not source or dataset.source == source):
            return dataset
    what = _("{title} ({source})").format(
        title=_(title) if title else name, source=stored(source) if source else _("its source was not recorded")
    )
    if source.startswith(SAMPLE_NAME):
        dataset = load_sample()
    elif not imported and source.startswith(_FOLDER_SOURCES):
        folder = (
            source.split(" ", 2)[2] if source.startswith("local folder ") else source.removeprefix("downloaded to ")
        )
        try:
            dataset = load_idx_folder(folder, name, source=source)
        except DataError as exc:
            message = _("this run was measured on {what}, which cannot be read now: {error}")
            raise DataError(message.format(what=what, error=exc)) from exc
    else:
        raise DataError(_("this run was measured on {what}, which this server does not have.").format(what=what))
    if dataset.n_test != n_test:
        raise DataError(
            _("this run was measured on {n:,} test images of {what}; that source now has {now:,}.").format(
                n=n_test, what=what, now=dataset.n_test
            )
        )
    return dataset
