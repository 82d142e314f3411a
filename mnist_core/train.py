"""The training loop: the tutorial's three loop styles, callbacks, live control (pause, step, knobs) and CUDA graphs.

The whole data set lives on the training device as uint8 images, shaped (N, 1, 28, 28), each batch turned into
floats in [0, 1] as it is used; a batch is a slice of a seeded permutation, so there is no per-sample Dataset or
DataLoader on the hot path. The loop knows nothing of any UI: progress, live charts and the tutorial's loss
recorder plug in as callbacks. A ``Trainer`` holds no global state and can run in a thread while another thread
reads its ``history``. The config is in config.py, the history in history.py, devices in devices.py.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from . import settings
from .config import (
    TrainConfig,
    batch_bounds,
    batches_per_epoch,
    check_knob,
    held_out,
    problems_sentence,
    validation_split,
)
from .data import Dataset
from .devices import resolve_device
from .history import EpochMetrics, History
from .i18n import N_
from .model import TutorialCNN, as_input, build_model, evaluating
from .outcomes import RUNNING, Ending, collapse_note, judge_ending, near_chance, top_answer_share


def evaluate(model: TutorialCNN, x: torch.Tensor, y: torch.Tensor, chunk: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on device tensors x (N, 1, 28, 28) floats or (N, 28, 28)
    uint8 images (made floats a chunk at a time), y (N,).

    Chunks of about a thousand images keep the activations in cache: measured 1.7x faster on
    the CPU than one chunk of 10,000.
    """
    total_loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    with torch.inference_mode(), evaluating(model):
        for start in range(0, len(x), chunk):
            xb = x[start : start + chunk]
            logits = model.logits(as_input(xb, x.device) if xb.dtype == torch.uint8 else xb)
            yb = y[start : start + chunk]
            total_loss += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
    n = max(len(x), 1)
    return total_loss.item() / n, correct.item() / n


class Callback:
    """Hooks into a run; override what you need. Called in the training thread, in order."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_batch_start(self, trainer: Trainer, step: int) -> None:
        """Step ``step`` (1-based) is about to run: the weights are those after step ``step - 1``. Runs on every
        batch, before its forward pass (where forward hooks for this one batch go): keep it cheap."""

    def wants_eager(self, trainer: Trainer, step: int) -> bool:
        """True if step ``step`` must run eagerly, op by op (its hooks must fire): on a GPU the other steps may
        be replays of a captured CUDA graph, where no Python runs."""
        return False

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None: ...

    def on_pause(self, trainer: Trainer, paused: bool) -> None:
        """The loop stopped to wait for resume or step (``paused``), or goes on again."""

    def on_knobs(self, trainer: Trainer, step: int, lr: float, momentum: float | None) -> None:
        """A learning-rate or momentum change took effect after ``step`` steps."""

    def on_train_end(self, trainer: Trainer) -> None: ...


# A run's messages are saved in run.json, so they are made in English (N_, whatever the language in use) and a page
# shows them through i18n.stored(), which translates them values and all.
STOPPED_BY_USER = N_("Stopped by the user")

STEP_LOG_ENV = "MNIST_STEP_LOG"  # a folder: every run trained here writes its steps' times there (StepClock)


class StepClock(Callback):
    """When each step ended, in the run's training time (``History.train_seconds``: no evaluation, no pause),
    written as JSON to a file of its own in ``folder`` when the run ends. What it is for: comparing where a run
    watched in the page and the same run from the CLI spend their time, step by step
    (``benchmarks/bench_live_chart.py --step-log``). The trainers and the CLI keep one where ``MNIST_STEP_LOG``
    names a folder (``from_env``). On a GPU the losses arrive in bursts, and these times with them."""

    def __init__(self, folder: Path | str, label: str) -> None:
        self.folder, self.label = Path(folder), label
        self.seconds: list[float] = []

    @classmethod
    def from_env(cls, label: str) -> StepClock | None:
        folder = settings.get(STEP_LOG_ENV)
        return cls(folder, label) if folder else None

    def on_train_start(self, trainer: Trainer) -> None:
        self.seconds = []

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        self.seconds.append(trainer.history.train_seconds)

    def on_train_end(self, trainer: Trainer) -> None:
        h = trainer.history
        record = {
            "label": self.label,
            "steps": h.step,
            "total_steps": h.total_steps,
            "threads": torch.get_num_threads(),
            "images_per_sec": h.images_per_sec,
            "seconds": self.seconds,
        }
        path = self.folder / f"{self.label}-{os.getpid()}-{time.time_ns()}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
        except OSError as exc:  # a diagnostic: the run itself goes on
            print(f"could not write the step log {path}: {exc}", file=sys.stderr)


class RunControl:
    """Stop, pause, step and knob changes for a run, safe to call from any thread.

    The loop asks ``wait_turn`` before every batch: it blocks while paused (unless a step was
    granted) and says whether to stop. A knob change waits in ``take_knobs`` for the next batch.
    """

    def __init__(self, stop_event: threading.Event | None = None, max_pause_s: float | None = None) -> None:
        self.stop_event = stop_event or threading.Event()
        self.max_pause_s = max_pause_s  # None: a pause may last for ever
        self._cond = threading.Condition()
        self._paused = False
        self._budget = 0  # batches granted by step() while paused
        self._to_epoch_end = False  # step_epoch(): run on until the epoch ends
        self._knobs: dict[str, float] = {}
        self.stop_status, self.stop_reason = Ending.STOPPED, STOPPED_BY_USER

    @property
    def paused(self) -> bool:
        return self._paused

    def stop(self, status: str = Ending.STOPPED, reason: str = STOPPED_BY_USER) -> None:
        """Stop before the next batch; the run ends with ``status`` and a message starting with ``reason``."""
        with self._cond:
            if not self.stop_event.is_set():
                self.stop_status, self.stop_reason = status, reason
            self.stop_event.set()
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._paused, self._budget, self._to_epoch_end = True, 0, False

    def resume(self) -> None:
        with self._cond:
            self._paused, self._budget, self._to_epoch_end = False, 0, False
            self._cond.notify_all()

    def step(self, batches: int = 1) -> None:
        """While paused: train ``batches`` more, then pause again. (Running: pause after them.)"""
        with self._cond:
            self._paused, self._budget = True, max(1, int(batches))
            self._cond.notify_all()

    def step_epoch(self) -> None:
        """While paused: train to the end of the current epoch (a whole one at an epoch boundary), then pause."""
        with self._cond:
            self._paused, self._to_epoch_end = True, True
            self._cond.notify_all()

    def set_knobs(self, lr: float | None = None, momentum: float | None = None) -> None:
        """From the next batch on, train with this learning rate and/or momentum (checked first)."""
        problems = [
            p for name, v in (("lr", lr), ("momentum", momentum)) if v is not None and (p := check_knob(name, v))
        ]
        if problems:
            raise ValueError(problems_sentence(problems))
        with self._cond:
            self._knobs.update({k: float(v) for k, v in (("lr", lr), ("momentum", momentum)) if v is not None})

    def take_knobs(self) -> dict[str, float]:
        with self._cond:
            knobs, self._knobs = self._knobs, {}
            return knobs

    def _blocked(self) -> bool:
        return self._paused and not self._budget and not self._to_epoch_end and not self.stop_event.is_set()

    def try_turn(self) -> bool | None:
        """Before a batch, without blocking: True to train it (using up a granted step), False to stop,
        None if the run is paused and must wait (then call ``wait_turn``). One lock: a pause cannot slip
        between the question and the answer."""
        with self._cond:
            if self._blocked():
                return None
            if self._budget:
                self._budget -= 1
            return not self.stop_event.is_set()

    def wait_turn(self) -> bool:
        """Block while paused, then use up one granted step; False if the run must stop. A pause longer
        than ``max_pause_s`` stops the run (it is saved), so that a closed tab cannot hold a trainer forever."""
        deadline = None if self.max_pause_s is None else time.monotonic() + self.max_pause_s
        with self._cond:
            while self._blocked():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self.stop_event.set()
                    minutes = self.max_pause_s / 60
                    self.stop_status, self.stop_reason = (
                        Ending.STOPPED,
                        N_("Paused for over {minutes:g} minutes, so stopped").format(minutes=minutes),
                    )
                    break
                self._cond.wait(left)
            if self._budget:
                self._budget -= 1
            return not self.stop_event.is_set()

    def epoch_ended(self) -> None:
        with self._cond:
            self._to_epoch_end = False


GRAPH_WARMUP = 3  # eager steps with unchanged knobs before a step is captured (and after each live change)


class StepGraph:
    """The "train!" step of a GPU run captured once as a CUDA graph and replayed for every full batch.

    On a GPU one step of this small network is about 60 kernel launches from Python, and launching them
    costs far more than running them (2.2 ms a step on an H200, ``benchmarks/bench_device.py``); a replay
    is one launch. The graph gathers its batch through ``idx``, updates the weights, the optimiser's state
    and the epoch's running sums in place, and leaves the batch loss in ``loss``. A live knob change drops
    it (the learning rate is baked into the captured update); it is captured again after ``GRAPH_WARMUP``
    calm eager steps, which also warm cuDNN and create the optimiser's state, as capture requires. Eager
    steps (the epoch's last, larger batch; a step a callback measures with hooks) mix freely with replays:
    both update the same weights and optimiser state in place.
    """

    def __init__(self, trainer: Trainer, opt: torch.optim.Optimizer, sums: tuple[torch.Tensor, torch.Tensor]):
        self.trainer, self.opt, self.sums = trainer, opt, sums
        self.idx = torch.zeros(trainer.config.batch_size, dtype=torch.long, device=trainer.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.loss: torch.Tensor | None = None
        self.calm = 0  # eager full-batch steps since the last knob change
        self.replays = self.captures = 0
        self.side = torch.cuda.Stream(trainer.device)  # warm-up runs on a side stream, as capture asks

    def drop(self) -> None:
        self.graph, self.loss, self.calm = None, None, 0

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        """Train on the images ``idx`` (a full batch) and return its loss: a replay once captured; before, an
        eager warm-up step on the side stream (capture asks for warm-up there)."""
        if self.graph is None and self.calm >= GRAPH_WARMUP:
            self._capture()
        if self.graph is None:
            current = torch.cuda.current_stream(self.trainer.device)
            self.side.wait_stream(current)
            with torch.cuda.stream(self.side):
                loss = self.trainer._train_step(idx, self.opt, self.sums)
            current.wait_stream(self.side)
            self.calm += 1
            return loss
        self.idx.copy_(idx)
        self.graph.replay()
        self.replays += 1
        return self.loss.clone()

    def _capture(self) -> None:
        t, graph = self.trainer, torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)  # the backward pass in the graph makes its own gradients
        with torch.cuda.graph(graph):
            self.loss = t._train_step(self.idx, self.opt, self.sums)
        self.graph = graph
        self.captures += 1


class LossRecorder(Callback):
    """The tutorial's ``cb = () -> push!(loss_vector, loss(x_train, y_train))``, every ``every`` batches.

    As in the article it evaluates the whole training set each time, which is expensive:
    ``every`` keeps it affordable. On a GPU it runs when the batch losses are delivered, a few
    dozen steps after the step it is filed under.
    """

    def __init__(self, every: int) -> None:
        self.every = every

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        if step % self.every == 0:
            trainer.history.full_losses.append((step, trainer.train_set_loss()))


class Budget(Callback):
    """Stops a run that passes this server's limits on work (images, evaluations included) or time, and says so."""

    def __init__(self, most_images: int, most_seconds: float) -> None:
        self.most_images, self.most_seconds = most_images, most_seconds
        self.started = time.monotonic()

    def used(self, trainer: Trainer) -> int:
        """Images processed so far: training, each finished epoch's evaluation, the loss recorder's passes."""
        h, n_fit = trainer.history, trainer.n_fit
        per_epoch_eval = trainer.dataset.n_test + trainer.dataset.n_train - n_fit
        return h.images_done + len(h.epochs) * per_epoch_eval + len(h.full_losses) * n_fit

    def on_train_start(self, trainer: Trainer) -> None:
        self.started = time.monotonic()

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        if self.used(trainer) > self.most_images:
            reason = N_("Reached this server's limit of {n:,} images per run").format(n=self.most_images)
            trainer.control.stop(Ending.STOPPED, reason)
        elif time.monotonic() - self.started > self.most_seconds:
            minutes = self.most_seconds / 60
            reason = N_("Reached this server's limit of {minutes:g} minutes per run").format(minutes=minutes)
            trainer.control.stop(Ending.STOPPED, reason)


class Trainer:
    """One training run: ``run()`` trains in the calling thread; ``control`` steers it from any other."""

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset,
        callbacks: list[Callback] | tuple[Callback, ...] = (),
        stop_event: threading.Event | None = None,
        control: RunControl | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.dataset = dataset
        self.device = resolve_device(config.device)
        self.callbacks = list(callbacks)
        if config.record_every:
            self.callbacks.append(LossRecorder(config.record_every))
        self.control = control or RunControl(stop_event)
        self.stop_event = self.control.stop_event
        self.lr = config.lr  # the learning rate in use now (a live change moves it)
        self.momentum = config.momentum if config.optimiser != "Descent" else None
        # channels_last lets oneDNN (CPU) and cuDNN pick their fastest kernels for these small convs.
        network = build_model(config.init, seed=config.seed, **config.network())
        self.model = network.to(self.device, memory_format=torch.channels_last)
        self.n_fit = dataset.n_train - held_out(dataset.n_train, config.validation)  # images trained on
        steps_per_epoch = batches_per_epoch(self.n_fit, config.batch_size)
        self.history = History(total_steps=steps_per_epoch * config.epochs, steps_per_epoch=steps_per_epoch)
        # On a GPU, reading a loss forces a sync: deliver them in chunks instead of every step.
        self.flush_every = 1 if self.device.type == "cpu" else 32
        # On CUDA the "train!" step is replayed from a captured graph (see StepGraph); False: every step eager.
        self.use_graph = self.device.type == "cuda" and config.loop == "train!"
        self._x_train = self._y_train = self._x_test = self._y_test = None
        self._x_val = self._y_val = None  # the validation split, if the config holds one out
        self._graph: StepGraph | None = None
        self._params: list[torch.nn.Parameter] = []

    # ----------------------------------------------------------------- control

    def stop(self) -> None:
        """Ask the run to stop; it does so before its next batch and keeps what it learned."""
        self.control.stop()

    # ----------------------------------------------------------------- data on device

    def _load_to_device(self) -> None:
        ds = self.dataset
        # uint8 (N, 28, 28), made floats a batch at a time: a quarter of the memory (188 MB less for MNIST)
        self._x_train = ds.train_images.to(self.device)
        self._y_train = ds.train_labels.to(self.device)
        if self.config.validation > 0:
            fit, val = (i.to(self.device) for i in validation_split(ds.n_train, self.config.validation))
            self._x_val, self._y_val = self._x_train[val], self._y_train[val]
            self._x_train, self._y_train = self._x_train[fit], self._y_train[fit]
        self._x_test = ds.test_images.to(self.device)
        self._y_test = ds.test_labels.to(self.device)

    def train_set_loss(self) -> float:
        return evaluate(self.model, self._x_train, self._y_train)[0]

    # ----------------------------------------------------------------- the loop

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        lr = self.config.lr
        if self.config.optimiser == "Momentum":
            return torch.optim.SGD(params, lr=lr, momentum=self.config.momentum, foreach=True)
        if self.config.optimiser == "ADAM":
            # capturable on CUDA: its step count stays on the GPU, as a graph needs (and eager steps do the same math)
            betas, capturable = (self.config.momentum, 0.999), self.device.type == "cuda"
            return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8, foreach=True, capturable=capturable)
        return torch.optim.SGD(params, lr=lr, foreach=True)

    def _apply_knobs(self, opt: torch.optim.Optimizer, knobs: dict[str, float]) -> None:
        """A live change: the optimiser keeps its state (momentum buffers, ADAM's moments), only the knobs move."""
        h = self.history
        if "lr" in knobs:
            self.lr = knobs["lr"]
        if "momentum" in knobs and self.momentum is not None:
            self.momentum = knobs["momentum"]
        for group in opt.param_groups:
            group["lr"] = self.lr
            if self.config.optimiser == "Momentum":
                group["momentum"] = self.momentum
            elif self.config.optimiser == "ADAM":
                group["betas"] = (self.momentum, group["betas"][1])
        h.record_knobs(h.step, self.lr, self.momentum)
        if self._graph is not None:
            self._graph.drop()  # the captured update holds the old values
        for cb in self.callbacks:
            cb.on_knobs(self, h.step, self.lr, self.momentum)

    def _update_step(self, loss: torch.Tensor, params: list[torch.Tensor], opt: torch.optim.Optimizer) -> None:
        """One update, in the loop style of the config; all three agree for Descent."""
        style = self.config.loop
        if style == "train!":
            # What Flux.train! hides: zero the gradients, backpropagate, let the optimiser step.
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        elif style == "gradient":
            # gs = gradient(() -> loss(x, y), ps); update!(opt, ps, gs)
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
        else:
            # for p in ps; p .-= lr .* gs[p]; end  -- all that Descent does.
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p.sub_(self.lr * g)

    def _train_step(
        self, idx: torch.Tensor, opt: torch.optim.Optimizer, sums: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Train on the images ``idx``, add the batch's loss * size and correct answers to ``sums`` in place,
        and return the batch loss (a 0-d tensor; reading it would sync a GPU)."""
        xb, yb = as_input(self._x_train[idx], self.device), self._y_train[idx]  # (B, 1, 28, 28), (B,)
        logits = self.model.logits(xb)
        loss = F.cross_entropy(logits, yb)
        self._update_step(loss, self._params, opt)
        loss = loss.detach()
        sums[0].add_(loss * len(yb))
        sums[1].add_((logits.detach().argmax(1) == yb).sum())
        return loss

    def _step(self, idx: torch.Tensor, opt: torch.optim.Optimizer, sums: tuple[torch.Tensor, torch.Tensor]):
        """One batch: through the CUDA graph where there is one and the step may be replayed, else eager."""
        graph = self._graph
        if graph is None or len(idx) != self.config.batch_size:
            return self._train_step(idx, opt, sums)
        if any(cb.wants_eager(self, self.history.step + 1) for cb in self.callbacks):
            return self._train_step(idx, opt, sums)
        return graph.step(idx)

    def run(self) -> History:
        """Train to the end, a stop, or a non-finite loss; return the history (also ``self.history``)."""
        h = self.history
        h.status, h.started_at = RUNNING, time.time()
        h.lr_schedule, h.momentum_schedule = [], []
        h.record_knobs(0, self.lr, self.momentum)
        try:
            self._run()
        except Exception as exc:  # a failed run is recorded, never lost
            h.status = Ending.FAILED
            h.message = N_("Training failed: {error}").format(error=f"{type(exc).__name__}: {exc}")
        finally:
            for cb in self.callbacks:
                try:
                    cb.on_train_end(self)
                except Exception as exc:  # a broken callback must not hide the run's own outcome
                    if h.message:
                        note = N_("{message} (callback error: {error})")
                    else:
                        note = N_("(callback error: {error})")
                    h.message = note.format(message=h.message, error=exc).strip()
        return h

    def _run(self) -> None:
        cfg, h, model = self.config, self.history, self.model
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._load_to_device()
        for cb in self.callbacks:
            cb.on_train_start(self)
        self._params = list(model.parameters())
        opt = self._make_optimizer()
        # the epoch's running loss * images and correct answers, summed on the device in place
        sums = (torch.zeros((), device=self.device), torch.zeros((), device=self.device, dtype=torch.long))
        loss_sum, correct = sums
        self._graph = StepGraph(self, opt, sums) if self.use_graph else None
        gen = torch.Generator().manual_seed(cfg.seed)
        n, bs = self.n_fit, cfg.batch_size
        pending: list[torch.Tensor] = []  # losses not yet delivered (GPU: up to flush_every)
        for epoch in range(1, cfg.epochs + 1):
            h.epoch = epoch
            perm = torch.randperm(n, generator=gen).to(self.device)
            loss_sum.zero_(), correct.zero_()
            trained_before = h.train_seconds
            t0 = time.perf_counter()
            waited = 0.0  # seconds paused in this epoch: not training time
            seen = 0
            for start, stop in batch_bounds(n, bs):
                go_on = self.control.try_turn()
                if go_on is None:  # paused
                    go_on, paused_s = self._pause(pending, epoch, trained_before + (time.perf_counter() - t0 - waited))
                    waited += paused_s
                if not go_on:
                    break
                if knobs := self.control.take_knobs():
                    self._apply_knobs(opt, knobs)
                for cb in self.callbacks:
                    cb.on_batch_start(self, h.step + 1)
                idx = perm[start:stop]  # bs images, or up to 2 * bs - 1 in the epoch's last batch
                pending.append(self._step(idx, opt, sums))
                seen += stop - start
                h.step += 1
                h.images_done += stop - start
                h.train_seconds = trained_before + (time.perf_counter() - t0 - waited)
                if len(pending) >= self.flush_every and not self._deliver(pending, epoch):
                    break
            self._deliver(pending, epoch)
            self.control.epoch_ended()
            seconds = time.perf_counter() - t0 - waited
            h.train_seconds = trained_before + seconds
            if h.status == Ending.DIVERGED:
                break
            if seen:
                self._end_epoch(epoch, seen, seconds, sums)
            if self.stop_event.is_set():
                h.paused = False
                h.status = self.control.stop_status
                h.message = N_("{reason} at step {step} of {total} (epoch {epoch}).").format(
                    reason=self.control.stop_reason, step=h.step, total=h.total_steps, epoch=epoch
                )
                return
        if h.status == RUNNING:
            h.status = Ending.FINISHED
            h.message = N_("Finished {epochs} epochs ({steps} steps).").format(epochs=cfg.epochs, steps=h.step)
            self._judge_finished()

    def _pause(self, pending: list[torch.Tensor], epoch: int, trained_s: float) -> tuple[bool, float]:
        """Paused before a batch: show everything so far, then wait for resume, a step or stop. Returns whether
        to go on and the seconds waited (not training time)."""
        if not self._deliver(pending, epoch):
            return False, 0.0
        self.history.train_seconds = trained_s
        t_wait = time.perf_counter()
        self._set_paused(True)
        go_on = self.control.wait_turn()
        waited = time.perf_counter() - t_wait
        self._set_paused(False)  # resumed, or stepping (it says paused again when the steps are used)
        return go_on, waited

    def _end_epoch(self, epoch: int, seen: int, seconds: float, sums: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Measure the model on the test (and validation) images; a whole epoch joins the history."""
        loss_sum, correct = sums
        test_loss, test_acc = evaluate(self.model, self._x_test, self._y_test)
        val_loss = val_acc = None
        if self._x_val is not None:
            val_loss, val_acc = evaluate(self.model, self._x_val, self._y_val)
        metrics = EpochMetrics(
            epoch=epoch,
            step=self.history.step,
            train_loss=loss_sum.item() / seen,
            train_acc=correct.item() / seen,
            test_loss=test_loss,
            test_acc=test_acc,
            seconds=seconds,
            val_loss=val_loss,
            val_acc=val_acc,
        )
        if seen == self.n_fit:  # a partial epoch (a stop) is not an epoch
            self.history.epochs.append(metrics)
            for cb in self.callbacks:
                cb.on_epoch_end(self, metrics)

    def _judge_finished(self) -> None:
        """A finished run that collapsed to chance (one answer for every image) ends "collapsed" instead."""
        h, k = self.history, len(self.dataset.classes)
        if not h.epochs or not near_chance(h.epochs[-1].test_acc, k):
            return  # the model's answers are only needed near chance
        with torch.inference_mode(), evaluating(self.model):
            chunks = self._x_test.split(1024)
            answers = torch.cat([self.model.logits(as_input(x, self.device)).argmax(1) for x in chunks])
        test_acc = h.epochs[-1].test_acc
        h.status = judge_ending(h.status, test_acc, top_answer_share(answers), k)
        if h.status == Ending.COLLAPSED:
            h.message = collapse_note(h.message, test_acc, k, self.config.optimiser, self.lr)

    def _set_paused(self, paused: bool) -> None:
        self.history.paused = paused
        for cb in self.callbacks:
            cb.on_pause(self, paused)

    def _deliver(self, pending: list[torch.Tensor], epoch: int) -> bool:
        """Hand the pending losses to the history and callbacks, in order; False if one is not finite."""
        if not pending:
            return True
        h = self.history
        values = torch.stack(pending).tolist()  # the only sync point of the loop
        pending.clear()
        first_step = h.step - len(values) + 1
        for i, value in enumerate(values):
            step = first_step + i
            if not math.isfinite(value):
                h.status = Ending.DIVERGED
                h.step = step - 1
                h.message = N_(
                    "The loss became {value} at step {step} (epoch {epoch}) and training stopped. The learning rate "
                    "{lr:g} is too high for {optimiser}: try a lower one (for example 10x lower)."
                ).format(value=value, step=step, epoch=epoch, lr=self.lr, optimiser=self.config.optimiser)
                return False
            h.batch_losses.append(value)
            for cb in self.callbacks:
                cb.on_batch_end(self, step, epoch, value)
        return True


def train(
    config: TrainConfig,
    dataset: Dataset,
    callbacks: list[Callback] | tuple[Callback, ...] = (),
    stop_event: threading.Event | None = None,
) -> Trainer:
    """Train in this thread and return the finished ``Trainer`` (model, history, config)."""
    trainer = Trainer(config, dataset, callbacks, stop_event)
    trainer.run()
    return trainer


class _StepTimes(Callback):
    """When each batch ended (after the device finished it); stops the run once ``enough`` steps took
    ``budget_s``, so that a big network is timed in a second or two."""

    def __init__(self, enough: int, budget_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ends: list[float] = []
        self.enough, self.budget_s, self.clock = enough, budget_s, clock

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        self.ends.append(self.clock())
        if len(self.ends) >= self.enough and self.ends[-1] - self.ends[0] > self.budget_s:
            trainer.control.stop()


def estimate_epoch_seconds(
    config: TrainConfig,
    n_fit: int,
    steps: int = 8,
    budget_s: float = 0.5,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds of training one epoch of ``n_fit`` images will take with ``config`` (its network, batch size,
    optimiser, loop style and device), from up to ``steps`` real steps of the loop on random digits in this
    process, at its thread count (fewer past ``budget_s``). The first two steps (warm-up, a CUDA graph's
    capture) are not counted."""
    n = config.batch_size * (steps + 2)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    digits = Dataset(
        "estimate", "random digits", "generated", images, labels, images[:1], labels[:1], tuple("0123456789")
    )
    times = _StepTimes(enough=4, budget_s=budget_s, clock=clock)
    timed = TrainConfig(**{**config.to_dict(), "epochs": 1, "validation": 0.0, "record_every": 0})
    Trainer(timed, digits, [times]).run()
    # The fastest step, as timeit does: a step another process slowed says nothing of the network
    gaps = [b - a for a, b in zip(times.ends[1:], times.ends[2:])]
    return min(gaps) * batches_per_epoch(n_fit, config.batch_size) if gaps else float("nan")
