"""The command line: the whole tutorial without the browser.

python -m mnist_core train [--lr 0.1 --epochs 10 ...]   layer table, progress, report, run folder
python -m mnist_core inspect                           the layer-shape table
python -m mnist_core evaluate RUN_DIR                  the report of a saved run
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields

from .data import DataError, load_dataset
from .model import first_prediction, format_layer_table, layer_table
from .report import Report, build_report
from .runs import RunError, finish_run, load_run
from .train import Callback, EpochMetrics, TrainConfig, Trainer


class ProgressBar(Callback):
    """A one-line progress bar on stderr: step, epoch, loss, images/s; a line per epoch."""

    def __init__(self, stream=sys.stderr, every_s: float = 0.2) -> None:
        self.stream, self.every_s, self._last = stream, every_s, 0.0

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        now = time.perf_counter()
        h = trainer.history
        if now - self._last < self.every_s and step != h.total_steps:
            return
        self._last = now
        width = 30
        filled = int(width * step / max(h.total_steps, 1))
        left = h.seconds_left
        eta = f" {left:4.0f}s left" if left is not None else ""
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] epoch {epoch}/{trainer.config.epochs} "
            f"step {step}/{h.total_steps} loss {loss:.4f} {h.images_per_sec:,.0f} img/s{eta}   "
        )
        self.stream.flush()

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self.stream.write(
            f"\repoch {metrics.epoch:>3}: train loss {metrics.train_loss:.4f} acc {metrics.train_acc:.2%} | "
            f"test loss {metrics.test_loss:.4f} acc {metrics.test_acc:.2%} | {metrics.seconds:.2f}s{' ' * 30}\n"
        )
        self.stream.flush()


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def print_report(report: Report) -> None:
    print(report.summary())
    print(report.per_class.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("confusion matrix (rows: true class, columns: predicted):")
    for row in report.confusion.tolist():
        print(" ".join(f"{v:5d}" for v in row))


def cmd_train(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    try:
        config.validate()
        dataset = load_dataset(config.dataset, data_dir=args.data_dir, allow_download=not args.offline)
        trainer = Trainer(config, dataset, callbacks=[ProgressBar()])
    except (ValueError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(dataset.describe())
    print(f"device: {trainer.device}")
    print(format_layer_table(layer_table(trainer.model)))
    guess, _ = first_prediction(trainer.model, dataset.train_images)
    print(f"Prediction of first image (untrained): {guess} (label {int(dataset.train_labels[0])})")
    try:
        trainer.run()
    except KeyboardInterrupt:  # Ctrl-C: keep what was learned, like the Stop button
        trainer.stop()
        trainer.history.status = "stopped"
        trainer.history.message = "Stopped with Ctrl-C."
    h = trainer.history
    folder, report, message = finish_run(trainer, dataset, root=args.runs_dir)
    print(f"\n{h.status}: {message}")
    print(f"training time {h.train_seconds:.2f}s, {h.images_per_sec:,.0f} images/s")
    if report is not None:
        print_report(report)
    if folder is not None:
        print(f"run saved to {folder}")
    return 0 if h.status in ("finished", "stopped") and folder is not None else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    print(format_layer_table(layer_table()))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    try:
        run = load_run(args.run_dir)
        dataset = load_dataset(run.config.dataset, data_dir=args.data_dir, allow_download=not args.offline)
    except (RunError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run {run.run_id}: {run.meta.get('status')} ({run.meta.get('message', '')})")
    print(dataset.describe())
    print_report(build_report(run.model, dataset))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="folder with the four IDX files (else MNIST_DATA_DIR, download, sample)")
    common.add_argument("--offline", action="store_true", help="do not try to download")

    train = sub.add_parser("train", parents=[common], help="train the tutorial's model")
    for f in fields(TrainConfig):  # each flag from the field's one definition, as the Train page reads it
        knob = TrainConfig.knob(f.name)
        bounds = f" [{knob.low:g} .. {knob.high:g}]" if knob.low is not None else ""
        train.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(f.default),
            default=f.default,
            choices=knob.choices,
            help=f"{knob.help}{bounds} (default: %(default)s)",
        )
    train.add_argument("--runs-dir", help="where to save the run (default: MNIST_RUNS_DIR or ./runs)")
    train.set_defaults(func=cmd_train)

    inspect = sub.add_parser("inspect", help="print the layer-shape table")
    inspect.set_defaults(func=cmd_inspect)

    evaluate = sub.add_parser("evaluate", parents=[common], help="report on a saved run")
    evaluate.add_argument("run_dir", help="a run folder under runs/")
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
