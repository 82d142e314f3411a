"""The command line: the whole tutorial without the browser.

python -m mnist_core train [--lr 0.1 --epochs 10 ...]   layer table, progress, report, run folder
python -m mnist_core inspect                           the layer-shape table
python -m mnist_core evaluate RUN_DIR                  the report of a saved run
python -m mnist_core explain RUN_DIR --index N --out F  what test digit N's answer rests on, as a heat-map PNG
python -m mnist_core lr-find [--optimiser ADAM ...]    the learning-rate range test and a suggested lr
python -m mnist_core tune --trials 12 [--study NAME]   a hyperparameter study; last line: best: ... val ... test ...
python -m mnist_core tune-worker --study NAME          join a study from any machine that reaches its storage
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from inspect import signature

import torch

from .config import CONFIG_FIELDS, NETWORK_KNOBS, TrainConfig
from .data import DataError, Dataset, load_dataset
from .history import EpochMetrics
from .lr_find import SUGGESTION_RULE, LrFindResult, lr_find
from .model import build_model, first_prediction, format_layer_table, layer_table
from .outcomes import Ending
from .report import Report, build_report
from .run_schema import RunError
from .runs import Run, finish_run, load_run
from .threads import CpuLoad, run_threads, starting_threads
from .train import Callback, StepClock, Trainer


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
    load = CpuLoad()  # what else the machine does while the data loads: the run starts on the free cores
    try:
        config.validate()
        dataset = load_dataset(config.dataset, data_dir=args.data_dir, allow_download=not args.offline)
        clock = StepClock.from_env("cli")
        callbacks = [ProgressBar(), *([clock] if clock else []), *run_threads(load)]
        trainer = Trainer(config, dataset, callbacks=callbacks)
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
        trainer.history.status = Ending.STOPPED
        trainer.history.message = "Stopped with Ctrl-C."
    h = trainer.history
    folder, report, message = finish_run(trainer, dataset, root=args.runs_dir)
    print(f"\n{h.status}: {message}")
    print(f"training time {h.train_seconds:.2f}s, {h.images_per_sec:,.0f} images/s")
    if report is not None:
        print_report(report)
    if folder is not None:
        print(f"run saved to {folder}")
    return 0 if h.status in (Ending.FINISHED, Ending.STOPPED) and folder is not None else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    config = TrainConfig(**{name: getattr(args, name) for name in NETWORK_KNOBS})
    try:
        config.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_layer_table(layer_table(build_model(**config.network()))))
    return 0


def _run_and_data(args: argparse.Namespace) -> tuple[Run, Dataset] | None:
    """The saved run ``args.run_dir`` and its data set; None, with the reason on stderr, if either fails."""
    try:
        run = load_run(args.run_dir)
        return run, load_dataset(run.config.dataset, data_dir=args.data_dir, allow_download=not args.offline)
    except (RunError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def cmd_evaluate(args: argparse.Namespace) -> int:
    if (found := _run_and_data(args)) is None:
        return 2
    run, dataset = found
    print(f"run {run.run_id}: {run.meta.get('status')} ({run.meta.get('message', '')})")
    print(dataset.describe())
    print_report(build_report(run.model, dataset))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Heat-maps of test digit ``--index`` for the predicted class and the runner-up, side by side, in ``--out``."""
    from .explain import explain, heat_png, top_two

    if (found := _run_and_data(args)) is None:
        return 2
    run, dataset = found
    if not 0 <= args.index < dataset.n_test:
        print(f"error: --index must be between 0 and {dataset.n_test - 1}", file=sys.stderr)
        return 2
    image = dataset.test_images[args.index].numpy()
    classes = dataset.classes
    found = [explain(run.model, image, c, args.method) for c in top_two(run.model, image)]
    with open(args.out, "wb") as out:
        out.write(heat_png(image, [e.heat for e in found]))
    best, second = found
    print(
        f"predicted {classes[best.target]} ({best.probability:.0%}), runner-up {classes[second.target]} "
        f"({second.probability:.0%}), true {classes[int(dataset.test_labels[args.index])]}; {args.method} heat-maps "
        f"(red: for the class, blue: against) in {args.out}"
    )
    return 0


# The config fields a range test uses; lr, epochs and the loss recorder are the test's own business.
LR_FIND_FIELDS = ("dataset", "optimiser", "momentum", "batch_size", "seed", "device", "init", "loop")


def format_lr_curve(result: LrFindResult, rows: int = 15, width: int = 30) -> str:
    """The range test's curve as a small table: evenly spaced batches, the lowest smoothed loss among them."""
    n = len(result.lrs)
    best = min(range(n), key=result.smoothed.__getitem__)
    shown = sorted({round(i * (n - 1) / (rows - 1)) for i in range(rows)} | {best})
    low = min(result.smoothed[i] for i in shown)
    high = max(result.smoothed[i] for i in shown)
    lines = [f"{'batch':>5} {'lr':>9} {'loss':>8} {'smoothed':>8}  smoothed loss, {low:.3g} .. {high:.3g}"]
    for i in shown:
        bar = "#" * (1 + round((width - 1) * (result.smoothed[i] - low) / ((high - low) or 1)))
        mark = "  <- lowest smoothed loss" if i == best else ""
        lines.append(
            f"{i + 1:>5} {result.lrs[i]:>9.3g} {result.losses[i]:>8.4f} {result.smoothed[i]:>8.4f}  {bar}{mark}"
        )
    return "\n".join(lines)


def cmd_lr_find(args: argparse.Namespace) -> int:
    config = TrainConfig(**{name: getattr(args, name) for name in LR_FIND_FIELDS})
    try:
        config.validate()
        load = CpuLoad()
        dataset = load_dataset(config.dataset, data_dir=args.data_dir, allow_download=not args.offline)
        torch.set_num_threads(starting_threads(load))  # a second's test: too short to tune, started on free cores
        result = lr_find(config, dataset, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    except (ValueError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # the training step itself failed
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lr range test stopped with Ctrl-C.", file=sys.stderr)
        return 130
    endings = {
        "end": f"reached lr {args.end_lr:g}",
        "exploded": "stopped early: the smoothed loss blew up",
        "diverged": "stopped early: the loss was no longer finite",
        "stopped": "stopped",
    }
    print(dataset.describe())
    print(
        f"{config.optimiser}, batch size {config.batch_size}, seed {config.seed}: {len(result.lrs)} batches "
        f"in {result.seconds:.1f}s, lr {result.lrs[0]:.3g} .. {result.lrs[-1]:.3g}; {endings[result.ending]}"
    )
    print(format_lr_curve(result))
    print(
        f"the suggestion is {SUGGESTION_RULE}; to train with it: "
        f"python -m mnist_core train --optimiser {config.optimiser} --lr {result.suggested_lr:.3g}"
    )
    print(f"suggested lr: {result.suggested_lr:.3g}")
    return 0


def _space_from_args(args: argparse.Namespace):
    from .tune import SearchSpace

    def listed(text: str, kind: type) -> tuple:
        try:
            return tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a comma-separated list of {kind.__name__} values") from None

    return SearchSpace(
        lr_low=args.lr_low,
        lr_high=args.lr_high,
        optimisers=listed(args.optimisers, str),
        batch_sizes=listed(args.batch_sizes, int),
        epochs=listed(args.epochs, int),
        widths=listed(args.widths, float),
        activations=listed(args.activations, str),
        sampler=args.sampler,
        dataset=args.dataset,
        validation=args.validation,
        seed=args.seed,
        grid_per_decade=args.grid_per_decade,
    )


def cmd_tune(args: argparse.Namespace) -> int:
    """Create or join a study and train its trials here; the last line names the best trial."""
    from .tune import best_trial, default_storage, describe_space, format_params, open_study, run_trials

    load = CpuLoad()
    storage = args.storage or default_storage(args.runs_dir)
    try:
        space = _space_from_args(args) if args.command == "tune" else None
        study, space = open_study(storage, args.study, space, sampler_seed=args.sampler_seed)
        dataset = load_dataset(space.dataset, data_dir=args.data_dir, allow_download=not args.offline)
    except (ValueError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Trials often share the machine with other workers: each starts on the free cores, then tunes its count.
    starting = starting_threads(load)
    before = len(study.trials)
    print(f"study {args.study!r} in {storage}: {describe_space(space)}; {before} trial(s) so far")
    print(
        f"selecting on {dataset.n_train - round(dataset.n_train * space.validation):,} images trained on, "
        f"{round(dataset.n_train * space.validation):,} held out for validation; the test set is not used to choose"
    )

    def say(result) -> None:
        val = "no validation accuracy" if result.val_acc is None else f"val {result.val_acc:.4f}"
        print(
            f"trial {result.number}: {format_params(result.params)} -> {result.state}, {val} "
            f"({result.epochs_done} epochs) {result.message if result.state == 'failed' else ''}".rstrip()
        )

    results = run_trials(study, space, dataset, args.trials, root=args.runs_dir, on_trial=say, threads=starting)
    best = best_trial(study)
    print(f"{len(results)} trial(s) here, {len(study.trials)} in the study")
    if best is None:
        print("best: none (no trial has finished)")
        return 0 if args.trials == 0 else 1  # --trials 0: create the study for the workers, train nothing
    test = "n/a" if best.test_acc is None else f"{best.test_acc:.4f}"
    print(f"best: {format_params(best.params)} val {best.val_acc:.4f} test {test}")
    return 0


def add_config_flags(parser: argparse.ArgumentParser, names: list[str] | tuple[str, ...]) -> None:
    """A flag per TrainConfig field, from the field's one definition (as the Train page reads it)."""
    for name in names:
        f, knob = CONFIG_FIELDS[name], TrainConfig.knob(name)
        bounds = f" [{knob.low:g} .. {knob.high:g}]" if knob.low is not None else ""
        if isinstance(f.default, bool):  # --batch-norm / --no-batch-norm
            flag = "--" + name.replace("_", "-")
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=knob.help)
            continue
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(f.default),
            default=f.default,
            choices=knob.choices,
            help=f"{knob.help}{bounds} (default: %(default)s)",
        )


def _add_lr_find(sub, common: argparse.ArgumentParser) -> None:
    find = sub.add_parser(
        "lr-find", parents=[common], help="the learning-rate range test: raise the lr each batch, suggest one"
    )
    add_config_flags(find, LR_FIND_FIELDS)
    test = signature(lr_find).parameters  # the test's defaults, defined once
    for name, what in (
        ("start_lr", "first learning rate"),
        ("end_lr", "last learning rate"),
        ("steps", "batches from the first to the last lr"),
    ):
        default = test[name].default
        find.add_argument(
            "--" + name.replace("_", "-"), type=type(default), default=default, help=f"{what} (default: %(default)s)"
        )
    find.set_defaults(func=cmd_lr_find)


def _add_tune(sub, common: argparse.ArgumentParser) -> None:
    """``tune`` (a study's search space and its trials) and ``tune-worker`` (more trials of a study)."""
    from .tune import SAMPLERS, SearchSpace

    space = SearchSpace()
    joins = argparse.ArgumentParser(add_help=False, parents=[common])
    joins.add_argument("--study", default="mnist-tune", help="the study's name (default: %(default)s)")
    joins.add_argument(
        "--storage",
        help="an Optuna storage URL (sqlite:///..., postgresql://...) or journal:PATH (a journal file on a "
        "shared disk); default: MNIST_TUNE_STORAGE, else SQLite in the runs folder",
    )
    joins.add_argument("--trials", type=int, default=12, help="trials this process trains (default: %(default)s)")
    joins.add_argument("--runs-dir", help="where to save the trials' runs (default: MNIST_RUNS_DIR or ./runs)")
    joins.add_argument("--sampler-seed", type=int, help="seed of the sampler (default: none; differs per worker)")
    tune = sub.add_parser("tune", parents=[joins], help="search hyperparameters: create (or continue) a study")
    for name, kind, what in (
        ("lr_low", float, "lowest learning rate"),
        ("lr_high", float, "highest learning rate"),
        ("sampler", str, f"how to search: {', '.join(SAMPLERS)}"),
        ("dataset", str, "data set"),
        ("validation", float, "share of the training set held out to select on"),
        ("seed", int, "seed of every trial's weights and batch order"),
        ("grid_per_decade", int, "learning rates per decade a grid tries"),
    ):
        default = getattr(space, name)
        tune.add_argument(
            "--" + name.replace("_", "-"), type=kind, default=default, help=f"{what} (default: %(default)s)"
        )
    for name, what in (
        ("optimisers", ""),
        ("batch_sizes", ""),
        ("epochs", ""),
        ("widths", "multipliers of the tutorial's conv widths, 2: 16,32,64,64; "),
        ("activations", "of the conv layers; "),
    ):
        default = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in getattr(space, name))
        tune.add_argument(
            "--" + name.replace("_", "-"), default=default, help=f"{what}comma-separated (default: {default})"
        )
    tune.set_defaults(func=cmd_tune)
    worker = sub.add_parser("tune-worker", parents=[joins], help="join a study and train its trials")
    worker.set_defaults(func=cmd_tune)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="folder with the four IDX files (else MNIST_DATA_DIR, download, sample)")
    common.add_argument("--offline", action="store_true", help="do not try to download")

    train = sub.add_parser("train", parents=[common], help="train the tutorial's model")
    add_config_flags(train, list(CONFIG_FIELDS))
    train.add_argument("--runs-dir", help="where to save the run (default: MNIST_RUNS_DIR or ./runs)")
    train.set_defaults(func=cmd_train)

    inspect = sub.add_parser("inspect", help="print the layer-shape table (of the tutorial's Chain, or another)")
    add_config_flags(inspect, NETWORK_KNOBS)
    inspect.set_defaults(func=cmd_inspect)

    evaluate = sub.add_parser("evaluate", parents=[common], help="report on a saved run")
    evaluate.add_argument("run_dir", help="a run folder under runs/")
    evaluate.set_defaults(func=cmd_evaluate)

    from .explain import METHODS

    why = sub.add_parser("explain", parents=[common], help="what a test digit's answer rests on: a heat-map PNG")
    why.add_argument("run_dir", help="a run folder under runs/")
    why.add_argument("--index", type=int, required=True, help="the test digit's index")
    why.add_argument("--out", required=True, help="the PNG to write: the predicted class, then the runner-up")
    why.add_argument("--method", choices=list(METHODS), default="integrated_gradients", help="(default: %(default)s)")
    why.set_defaults(func=cmd_explain)

    _add_lr_find(sub, common)
    _add_tune(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
