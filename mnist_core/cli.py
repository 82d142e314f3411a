"""The command line: the whole tutorial without the browser.

python -m mnist_core train [--lr 0.1 --epochs 10 ...]   layer table, progress, report, run folder
python -m mnist_core inspect                           the layer-shape table
python -m mnist_core evaluate RUN_DIR                  the report of a saved run
python -m mnist_core explain RUN_DIR --index N --out F  what test digit N's answer rests on, as a heat-map PNG
python -m mnist_core lr-find [--optimiser ADAM ...]    the learning-rate range test and a suggested lr
python -m mnist_core tune --trials 12 [--study NAME]   a hyperparameter study; last line: best: ... val ... test ...
python -m mnist_core tune-worker --study NAME          join a study from any machine that reaches its storage

Every command speaks the language of ``--lang`` (en, zh_CN), else the environment's (LANGUAGE, LC_ALL, LANG:
zh_CN.UTF-8 gives Simplified Chinese), else English. The lines that scripts read stay as they are in every
language: ``suggested lr: ...``, ``predicted ...``, ``run saved to ...`` and tune's ``best: ...``. The work that
saves a run runs in English, as a trainer process does: what run.json keeps is English, shown translated.
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from dataclasses import fields
from inspect import signature

import pandas as pd
import torch

from . import i18n, settings
from .config import CONFIG_FIELDS, NETWORK_KNOBS, TrainConfig
from .data import DataError, Dataset, load_dataset
from .history import EpochMetrics
from .i18n import N_, _
from .lr_find import SUGGESTION_RULE, LrFindResult, lr_find
from .model import build_model, first_prediction, format_layer_table, layer_table
from .outcomes import STATUS_WORDS, Ending
from .report import Report, build_report
from .run_schema import RunError
from .runs import Run, finish_run, load_run
from .threads import CpuLoad, run_threads, starting_threads
from .train import Callback, StepClock, Trainer


class ProgressBar(Callback):
    """A one-line progress bar on stderr: step, epoch, loss, images/s; a line per epoch."""

    def __init__(self, stream=sys.stderr, every_s: float = 0.2) -> None:
        self.stream, self.every_s, self._last = stream, every_s, 0.0
        self.language = i18n.language()  # the reader's: the training around it runs in English

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        now = time.perf_counter()
        h = trainer.history
        if now - self._last < self.every_s and step != h.total_steps:
            return
        self._last = now
        width = 30
        filled = int(width * step / max(h.total_steps, 1))
        left = h.seconds_left
        with i18n.using(self.language):
            line = _("epoch {epoch}/{epochs} step {step}/{steps} loss {loss:.4f} {speed:,.0f} img/s").format(
                epoch=epoch, epochs=trainer.config.epochs, step=step, steps=h.total_steps, loss=loss,
                speed=h.images_per_sec,
            )  # fmt: skip
            eta = " " + _("{left:4.0f}s left").format(left=left) if left is not None else ""
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {line}{eta}   ")
        self.stream.flush()

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        m = metrics
        with i18n.using(self.language):
            line = _(
                "epoch {epoch:>3}: train loss {train_loss:.4f} acc {train_acc:.2%} | "
                "test loss {test_loss:.4f} acc {test_acc:.2%} | {seconds:.2f}s"
            ).format(epoch=m.epoch, train_loss=m.train_loss, train_acc=m.train_acc, test_loss=m.test_loss,
                     test_acc=m.test_acc, seconds=m.seconds)  # fmt: skip
        self.stream.write(f"\r{line}{' ' * 30}\n")
        self.stream.flush()


# How a trial ended: the words the study keeps, in the reader's language (a run's: outcomes.STATUS_WORDS)
TRIAL_WORDS = {"complete": N_("complete"), "pruned": N_("pruned"), "failed": N_("failed")}


def _word(word: str | None, words: dict[str, str]) -> str:
    """A status word in the language in use; one this table does not know, as it is."""
    return _(words[word]) if word in words else str(word)


def _shown(text: str) -> str:
    """A text defined elsewhere (a knob's help, a table's column), in the language in use."""
    return _(text) if text else text  # gettext's "" is the catalog's header


def _error(message: object) -> None:
    print(_("error: {message}").format(message=message), file=sys.stderr)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def print_report(report: Report) -> None:
    print(report.summary())
    table = report.per_class.rename(columns=_shown)  # the columns' names, translated only here
    with pd.option_context("display.unicode.east_asian_width", True):  # columns aligned under Chinese headings
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(_("confusion matrix (rows: true class, columns: predicted):"))
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
        _error(exc)
        return 2
    print(dataset.describe())
    print(_("device: {device}").format(device=trainer.device))
    print(format_layer_table(layer_table(trainer.model)))
    guess, _probabilities = first_prediction(trainer.model, dataset.train_images)
    print(
        _("Prediction of first image (untrained): {guess} (label {label})").format(
            guess=guess, label=int(dataset.train_labels[0])
        )
    )
    with i18n.using(i18n.DEFAULT):  # run.json keeps English, as a trainer process writes it
        try:
            trainer.run()
        except KeyboardInterrupt:  # Ctrl-C: keep what was learned, like the Stop button
            trainer.stop()
            trainer.history.status = Ending.STOPPED
            trainer.history.message = N_("Stopped with Ctrl-C.")
        h = trainer.history
        folder, report, message = finish_run(trainer, dataset, root=args.runs_dir)
    print("\n" + _("{status}: {message}").format(status=_word(h.status, STATUS_WORDS), message=i18n.stored(message)))
    print(
        _("training time {seconds:.2f}s, {speed:,.0f} images/s").format(seconds=h.train_seconds, speed=h.images_per_sec)
    )
    if report is not None:
        print_report(report)
    if folder is not None:
        print(f"run saved to {folder}")  # untranslated: read by scripts
    return 0 if h.status in (Ending.FINISHED, Ending.STOPPED) and folder is not None else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    config = TrainConfig(**{name: getattr(args, name) for name in NETWORK_KNOBS})
    try:
        config.validate()
    except ValueError as exc:
        _error(exc)
        return 2
    print(format_layer_table(layer_table(build_model(**config.network()))))
    return 0


def _run_and_data(args: argparse.Namespace) -> tuple[Run, Dataset] | None:
    """The saved run ``args.run_dir`` and its data set; None, with the reason on stderr, if either fails."""
    try:
        run = load_run(args.run_dir)
        return run, load_dataset(run.config.dataset, data_dir=args.data_dir, allow_download=not args.offline)
    except (RunError, DataError) as exc:
        _error(exc)
        return None


def cmd_evaluate(args: argparse.Namespace) -> int:
    if (found := _run_and_data(args)) is None:
        return 2
    run, dataset = found
    status, message = run.meta.get("status"), run.meta.get("message", "")
    print(
        _("run {run}: {status} ({message})").format(
            run=run.run_id, status=_word(status, STATUS_WORDS), message=i18n.stored(message)
        )
    )
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
        print(_("error: --index must be between 0 and {last}").format(last=dataset.n_test - 1), file=sys.stderr)
        return 2
    image = dataset.test_images[args.index].numpy()
    classes = dataset.classes
    found = [explain(run.model, image, c, args.method) for c in top_two(run.model, image)]
    with open(args.out, "wb") as out:
        out.write(heat_png(image, [e.heat for e in found]))
    best, second = found
    print(  # untranslated: read by scripts
        f"predicted {classes[best.target]} ({best.probability:.0%}), runner-up {classes[second.target]} "
        f"({second.probability:.0%}), true {classes[int(dataset.test_labels[args.index])]}; {args.method} heat-maps "
        f"(red: for the class, blue: against) in {args.out}"
    )
    return 0


# The config fields a range test uses; lr, epochs and the loss recorder are the test's own business.
LR_FIND_FIELDS = ("dataset", "optimiser", "momentum", "batch_size", "seed", "device", "init", "loop")


def _right(text: str, width: int) -> str:
    """``text`` right-aligned in ``width`` columns of a terminal, where a Chinese character takes two."""
    wide = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return " " * max(width - wide, 0) + text


def format_lr_curve(result: LrFindResult, rows: int = 15, width: int = 30) -> str:
    """The range test's curve as a small table: evenly spaced batches, the lowest smoothed loss among them."""
    n = len(result.lrs)
    best = min(range(n), key=result.smoothed.__getitem__)
    shown = sorted({round(i * (n - 1) / (rows - 1)) for i in range(rows)} | {best})
    low = min(result.smoothed[i] for i in shown)
    high = max(result.smoothed[i] for i in shown)
    heading = [_right(_("batch"), 5), _right("lr", 9), _right(_("loss"), 8), _right(_("smoothed"), 8)]
    lines = [" ".join(heading) + "  " + _("smoothed loss, {low:.3g} .. {high:.3g}").format(low=low, high=high)]
    for i in shown:
        bar = "#" * (1 + round((width - 1) * (result.smoothed[i] - low) / ((high - low) or 1)))
        mark = "  <- " + _("lowest smoothed loss") if i == best else ""
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
        _error(exc)
        return 2
    except RuntimeError as exc:  # the training step itself failed
        _error(exc)
        return 1
    except KeyboardInterrupt:
        print(_("lr range test stopped with Ctrl-C."), file=sys.stderr)
        return 130
    endings = {
        "end": _("reached lr {lr:g}").format(lr=args.end_lr),
        "exploded": _("stopped early: the smoothed loss blew up"),
        "diverged": _("stopped early: the loss was no longer finite"),
        "stopped": _("stopped"),
    }
    print(dataset.describe())
    print(
        _(
            "{optimiser}, batch size {batch_size}, seed {seed}: {batches} batches in {seconds:.1f}s, "
            "lr {first:.3g} .. {last:.3g}; {ending}"
        ).format(
            optimiser=config.optimiser,
            batch_size=config.batch_size,
            seed=config.seed,
            batches=len(result.lrs),
            seconds=result.seconds,
            first=result.lrs[0],
            last=result.lrs[-1],
            ending=endings[result.ending],
        )  # fmt: skip
    )
    print(format_lr_curve(result))
    command = f"python -m mnist_core train --optimiser {config.optimiser} --lr {result.suggested_lr:.3g}"
    print(
        _("the suggestion is {rule}; to train with it: {command}").format(rule=_shown(SUGGESTION_RULE), command=command)
    )
    print(f"suggested lr: {result.suggested_lr:.3g}")  # untranslated: read by scripts
    return 0


def _space_from_args(args: argparse.Namespace):
    from .tune import SearchSpace

    def listed(text: str, kind: type) -> tuple:
        try:
            return tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            message = _("{text} is not a comma-separated list of {kind} values")
            raise ValueError(message.format(text=repr(text), kind=kind.__name__)) from None

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
        _error(exc)
        return 2
    # Trials often share the machine with other workers: each starts on the free cores, then tunes its count.
    starting = starting_threads(load)
    before = len(study.trials)
    print(
        _("study {study} in {storage}: {space}; {before} trial(s) so far").format(
            study=repr(args.study), storage=storage, space=describe_space(space), before=before
        )
    )
    held_out = round(dataset.n_train * space.validation)
    print(
        _(
            "selecting on {trained:,} images trained on, {held_out:,} held out for validation; "
            "the test set is not used to choose"
        ).format(trained=dataset.n_train - held_out, held_out=held_out)
    )
    shown = i18n.language()  # the reader's: the trials around ``say`` run in English

    def say(result) -> None:
        with i18n.using(shown):
            if result.val_acc is None:
                val = _("no validation accuracy")
            else:
                val = _("val {accuracy:.4f}").format(accuracy=result.val_acc)
            line = _("trial {number}: {params} -> {state}, {val} ({epochs} epochs)").format(
                number=result.number, params=format_params(result.params), state=_word(result.state, TRIAL_WORDS),
                val=val, epochs=result.epochs_done,
            )  # fmt: skip
            failed = i18n.stored(result.message) if result.state == "failed" else ""
        print(f"{line} {failed}".rstrip())

    with i18n.using(i18n.DEFAULT):  # the runs and the study keep English, as a trainer process writes them
        results = run_trials(study, space, dataset, args.trials, root=args.runs_dir, on_trial=say, threads=starting)
    best = best_trial(study)
    print(_("{here} trial(s) here, {total} in the study").format(here=len(results), total=len(study.trials)))
    if best is None:
        print("best: none (no trial has finished)")  # untranslated: read by scripts
        return 0 if args.trials == 0 else 1  # --trials 0: create the study for the workers, train nothing
    test = "n/a" if best.test_acc is None else f"{best.test_acc:.4f}"  # untranslated: read by scripts
    print(f"best: {format_params(best.params)} val {best.val_acc:.4f} test {test}")  # untranslated: read by scripts
    return 0


def add_config_flags(parser: argparse.ArgumentParser, names: list[str] | tuple[str, ...]) -> None:
    """A flag per TrainConfig field, from the field's one definition (as the Train page reads it)."""
    for name in names:
        f, knob = CONFIG_FIELDS[name], TrainConfig.knob(name)
        bounds = f" [{knob.low:g} .. {knob.high:g}]" if knob.low is not None else ""
        if isinstance(f.default, bool):  # --batch-norm / --no-batch-norm
            flag = "--" + name.replace("_", "-")
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=_shown(knob.help))
            continue
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(f.default),
            default=f.default,
            choices=knob.choices,
            help=_with_default(_shown(knob.help) + bounds),
        )


def _with_default(what: str) -> str:
    """An option's help and, as argparse fills it in, its default."""
    return _("{what} (default: %(default)s)").format(what=what)


def _add_lr_find(sub, common: argparse.ArgumentParser) -> None:
    find = sub.add_parser(
        "lr-find", parents=[common], help=_("the learning-rate range test: raise the lr each batch, suggest one")
    )
    add_config_flags(find, LR_FIND_FIELDS)
    test = signature(lr_find).parameters  # the test's defaults, defined once
    for name, what in (
        ("start_lr", _("first learning rate")),
        ("end_lr", _("last learning rate")),
        ("steps", _("batches from the first to the last lr")),
    ):
        default = test[name].default
        find.add_argument("--" + name.replace("_", "-"), type=type(default), default=default, help=_with_default(what))
    find.set_defaults(func=cmd_lr_find)


def _add_tune(sub, common: argparse.ArgumentParser) -> None:
    """``tune`` (a study's search space and its trials) and ``tune-worker`` (more trials of a study)."""
    from .tune import SAMPLERS, SearchSpace

    space = SearchSpace()
    joins = argparse.ArgumentParser(add_help=False, parents=[common])
    joins.add_argument("--study", default="mnist-tune", help=_with_default(_("the study's name")))
    joins.add_argument(
        "--storage",
        help=_(
            "an Optuna storage URL (sqlite:///..., postgresql://...) or journal:PATH (a journal file on a "
            "shared disk); default: MNIST_TUNE_STORAGE, else SQLite in the runs folder"
        ),
    )
    joins.add_argument("--trials", type=int, default=12, help=_with_default(_("trials this process trains")))
    joins.add_argument("--runs-dir", help=_("where to save the trials' runs (default: MNIST_RUNS_DIR or ./runs)"))
    joins.add_argument("--sampler-seed", type=int, help=_("seed of the sampler (default: none; differs per worker)"))
    tune = sub.add_parser("tune", parents=[joins], help=_("search hyperparameters: create (or continue) a study"))
    for name, kind, what in (
        ("lr_low", float, _("lowest learning rate")),
        ("lr_high", float, _("highest learning rate")),
        ("sampler", str, _("how to search: {samplers}").format(samplers=", ".join(SAMPLERS))),
        ("dataset", str, _("data set")),
        ("validation", float, _("share of the training set held out to select on")),
        ("seed", int, _("seed of every trial's weights and batch order")),
        ("grid_per_decade", int, _("learning rates per decade a grid tries")),
    ):
        default = getattr(space, name)
        tune.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=_with_default(what))
    for name, what in (
        ("optimisers", N_("comma-separated (default: {default})")),
        ("batch_sizes", N_("comma-separated (default: {default})")),
        ("epochs", N_("comma-separated (default: {default})")),
        (
            "widths",
            N_("multipliers of the tutorial's conv widths, 2: 16,32,64,64; comma-separated (default: {default})"),
        ),
        ("activations", N_("of the conv layers; comma-separated (default: {default})")),
    ):
        default = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in getattr(space, name))
        tune.add_argument("--" + name.replace("_", "-"), default=default, help=_(what).format(default=default))
    tune.set_defaults(func=cmd_tune)
    worker = sub.add_parser("tune-worker", parents=[joins], help=_("join a study and train its trials"))
    worker.set_defaults(func=cmd_tune)


def _add_lang(parser: argparse.ArgumentParser) -> None:
    """``--lang``, before the command or after it; ``main`` reads it before the parser is built."""
    parser.add_argument(
        "--lang",
        choices=list(i18n.LANGUAGES),
        default=argparse.SUPPRESS,
        help=_(
            "the language of this command's text (default: the environment's LANGUAGE, LC_ALL or LANG; else English)"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser, its help in the language in use (``main`` sets it first)."""
    parser = argparse.ArgumentParser(
        prog="python -m mnist_core", description=_("The command line: the whole tutorial without the browser.")
    )
    _add_lang(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help=_("folder with the four IDX files (else MNIST_DATA_DIR, download, sample)"))
    common.add_argument("--offline", action="store_true", help=_("do not try to download"))

    train = sub.add_parser("train", parents=[common], help=_("train the tutorial's model"))
    add_config_flags(train, list(CONFIG_FIELDS))
    train.add_argument("--runs-dir", help=_("where to save the run (default: MNIST_RUNS_DIR or ./runs)"))
    train.set_defaults(func=cmd_train)

    inspect = sub.add_parser("inspect", help=_("print the layer-shape table (of the tutorial's Chain, or another)"))
    add_config_flags(inspect, NETWORK_KNOBS)
    inspect.set_defaults(func=cmd_inspect)

    evaluate = sub.add_parser("evaluate", parents=[common], help=_("report on a saved run"))
    evaluate.add_argument("run_dir", help=_("a run folder under runs/"))
    evaluate.set_defaults(func=cmd_evaluate)

    from .explain import METHODS

    why = sub.add_parser("explain", parents=[common], help=_("what a test digit's answer rests on: a heat-map PNG"))
    why.add_argument("run_dir", help=_("a run folder under runs/"))
    why.add_argument("--index", type=int, required=True, help=_("the test digit's index"))
    why.add_argument("--out", required=True, help=_("the PNG to write: the predicted class, then the runner-up"))
    why.add_argument(
        "--method", choices=list(METHODS), default="integrated_gradients", help=_("(default: %(default)s)")
    )
    why.set_defaults(func=cmd_explain)

    _add_lr_find(sub, common)
    _add_tune(sub, common)
    for command in sub.choices.values():
        _add_lang(command)
    return parser


def chosen_language(argv: list[str] | None = None) -> str:
    """``--lang`` (anywhere on the line), else the environment's locale, else English."""
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--lang")
    try:
        code = pre.parse_known_args(argv)[0].lang
    except argparse.ArgumentError:  # "--lang" without a value: the full parser says so
        code = None
    if code in i18n.LANGUAGES:
        return code
    return i18n.best_match(str(settings.get("LANG")))


def main(argv: list[str] | None = None) -> int:
    with i18n.using(chosen_language(argv)):  # before the parser is built: its help is in the language
        args = build_parser().parse_args(argv)
        return args.func(args)
