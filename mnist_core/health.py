"""Training health: per layer, how big the gradients and the updates are and how many ReLUs are dead.

Every ``every`` batches the ``HealthMonitor`` callback measures one training step, for each layer with
weights (conv 1-4 and the dense layer, named from the model's own chain):

- ``grad_norm``: ||dL/dW|| of the layer's weight on that batch (read by a hook on the weight, so all three
  loop styles are measured the same way, the hand-written update included);
- ``update_ratio``: ||W_after - W_before|| / ||W_before|| over that step: the weights are compared before and
  after the optimiser's step, so it is exact for Descent, Momentum and ADAM alike (not lr * ||g|| / ||W||,
  which is only Descent's update);
- ``dead_share``: the share of the layer's ReLU channels that output 0 at every position for every image of
  the batch. A channel is the unit that dies: one that never fires passes no gradient to its filter, so it
  cannot come back; a single position that is 0 while the rest of its map fires is normal. None for the
  dense layer, which has no ReLU;
- ``weight_norm``: ||W|| after the step.

Biases are left out of all four: they start at zero, where a ratio means nothing. The monitor adds hooks
only on the sampled batch (a forward hook per ReLU layer, a gradient hook per weight, each firing once),
so the other batches pay one Python call per callback. ``health_flags`` turns the numbers into words.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .history import EpochMetrics
from .i18n import _
from .model import ConvLayer, TutorialCNN
from .train import Callback, Trainer

# One step in HEALTH_EVERY is measured. A measurement (copies of the 15,594 weights, 20 norms, four sums of
# the batch's maps, one sync) costs about 0.5 ms on this CPU, and makes the measured step's own convolutions
# slower by as much again (the sums read every map of the batch). A step at batch 128 takes about 7.5 ms on one
# thread but 3-4 ms on the two a trainer now uses: one in 10 cost 2-3% of training time there
# (benchmarks/bench_health.py), one in 20 keeps it near 1% and still gives the 31-batch epochs of the embedded
# sample a reading or two each.
HEALTH_EVERY = 20
# A measurement costs about the same at any batch size, a step about in proportion to it: smaller batches are
# measured less often, one step per HEALTH_IMAGES images (batch 8: every 320 steps).
HEALTH_IMAGES = 2_560
# On a GPU both are bound by the CPU launching kernels: on an H200, a step of batch 128 took 2.2 ms and a
# measurement 1.3 ms, so a GPU run measures GPU_SPARSER times less often (every 60 steps: about 1%).
GPU_SPARSER = 3


def health_every(batch_size: int, device_type: str = "cpu") -> int:
    """How many steps apart the monitor measures at ``batch_size`` on a device of ``device_type``."""
    every = max(HEALTH_EVERY, round(HEALTH_IMAGES / max(1, batch_size)))
    return every if device_type == "cpu" else every * GPU_SPARSER


# Thresholds of health_flags, from runs on the embedded sample (batch 128, every step measured):
# - An update of about 1e-3 of the weights per step is the usual healthy pace (the "update:data ratio" rule
#   of thumb). The tutorial's Descent(0.1) moves its largest layer by 1e-3 to 4e-2 per step, its initial
#   plateau included; Descent at lr 1e-5 by 1e-7 (and ends 10 epochs at chance). Below 1e-5 in *every*
#   layer, a run is 100x slower than the healthy pace: stalled.
STALLED_RATIO = 1e-5
# - ADAM's first steps move every weight by about the lr, so a healthy ADAM 0.03 moves conv 4 by 51% in its
#   first step; runs that then collapse move a layer by more than its own size (ADAM 0.1: 170%, ADAM 1:
#   1,700%, Momentum 1: 400%, Descent 3: 230%).
JUMP_RATIO = 1.0
# - Gradient norms stay below 5 in healthy runs (Descent 0.1, Momentum 0.1, ADAM 0.01 and 0.03); runs that
#   collapse spike to 17 (Momentum 1) and 27 (ADAM 0.1) just before their ReLUs die.
EXPLODING_GRAD = 10.0
# - A batch loss under 0.01 (the model gives the right class 99% probability) leaves tiny gradients: small
#   updates then mean the run has learnt its training batches, not that it stalled.
CONVERGED_LOSS = 0.01
# - Healthy runs leave at most about 10% of a layer's channels dead on a batch; from half of them, a layer has
#   lost half of what it can compute (ADAM 0.03 loses 5 of conv 1's 8 channels and ends 3 points below 0.01).
DEAD_MANY = 0.5


@dataclass
class LayerHealth:
    """One layer's numbers at one measured step (see the module docstring for each)."""

    grad_norm: float
    update_ratio: float
    dead_share: float | None  # None for a layer without a ReLU (the dense layer)
    weight_norm: float


@dataclass
class HealthStats:
    """The health of every layer at one measured step, in the chain's order."""

    step: int  # the step measured (1-based): its gradient, its update, its batch
    layers: dict[str, LayerHealth]

    def to_dict(self) -> dict[str, dict]:
        """The layers as plain dicts: what the protocol's ``Health`` message carries."""
        return {name: asdict(layer) for name, layer in self.layers.items()}

    @classmethod
    def from_dict(cls, step: int, layers: dict[str, dict]) -> HealthStats:
        return cls(step=step, layers={name: LayerHealth(**values) for name, values in layers.items()})


def health_layers(model: TutorialCNN) -> list[tuple[str, nn.Module]]:
    """(name, module) of each layer with weights, in order: "conv 1" ... "conv 4" (a ConvLayer), "dense"."""
    out: list[tuple[str, nn.Module]] = []
    convs = 0
    for layer in model.layers:
        if isinstance(layer, ConvLayer):
            convs += 1
            out.append((f"conv {convs}", layer))
        elif isinstance(layer, nn.Linear):
            out.append(("dense", layer))
    return out


def _weight(module: nn.Module) -> torch.Tensor:
    return module.conv.weight if isinstance(module, ConvLayer) else module.weight


class HealthMonitor(Callback):
    """Measures one step in ``every`` (the first step too; None: ``health_every`` of the run's batch size and
    device) and hands each ``HealthStats`` to ``on_stats``.

    A measured step is armed in ``on_batch_start`` (weights copied, hooks added) and computed at the next
    ``on_batch_start``, epoch end, pause or the end of the run, whichever comes first: the weights then are
    exactly those after the measured step, also on a GPU, where losses are delivered in chunks. The numbers
    are read (and handed on) when the losses are delivered: on a GPU that read then waits for nothing, where
    reading at once would stall the queue of work the loop keeps ahead of the GPU.
    """

    def __init__(self, every: int | None = None, on_stats: Callable[[HealthStats], None] | None = None) -> None:
        if every is not None and every < 1:
            raise ValueError("every must be 1 or more")
        self.chosen = every
        self.every = every or HEALTH_EVERY
        self.on_stats = on_stats
        self.latest: HealthStats | None = None
        self._pending: dict | None = None  # the armed step's copies, hook results and hook handles
        self._unread: list[tuple[dict, torch.Tensor]] = []  # computed measurements, not yet read off the device

    def on_train_start(self, trainer: Trainer) -> None:
        self.every = self.chosen or health_every(trainer.config.batch_size, trainer.device.type)

    def on_batch_start(self, trainer: Trainer, step: int) -> None:
        if self._pending is not None:
            self._finish()
        if step == 1 or step % self.every == 0:
            self._arm(trainer.model, step)

    def wants_eager(self, trainer: Trainer, step: int) -> bool:
        return self._pending is not None and self._pending["step"] == step  # its hooks must fire

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        if self._unread:
            self._emit()

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self._finish()
        self._emit()

    def on_pause(self, trainer: Trainer, paused: bool) -> None:
        if paused:
            self._finish()
            self._emit()

    def on_train_end(self, trainer: Trainer) -> None:
        self._finish()
        self._emit()

    def _arm(self, model: TutorialCNN, step: int) -> None:
        layers = health_layers(model)
        pending = {"step": step, "names": [n for n, _ in layers], "handles": []}
        pending["weights"] = [_weight(m) for _, m in layers]  # updated in place by the step
        pending["relu"] = [isinstance(m, ConvLayer) and m.activation == "relu" for _, m in layers]  # dead: ReLU only
        pending["before"] = [w.detach().clone() for w in pending["weights"]]
        pending["grad"] = [None] * len(layers)  # ||g|| per layer, a 0-d tensor (no sync in the hook)
        pending["fired"] = [None] * len(layers)  # per ReLU layer: (C,) True where the channel fired
        for i, (_name, module) in enumerate(layers):
            pending["handles"].append(_weight(module).register_hook(self._grad_hook(pending, i)))
            if isinstance(module, ConvLayer):
                pending["handles"].append(module.register_forward_hook(self._relu_hook(pending, i)))
        self._pending = pending

    @staticmethod
    def _grad_hook(pending: dict, i: int) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            if pending["grad"][i] is None:  # once: only the measured step's backward pass
                pending["grad"][i] = torch.linalg.vector_norm(grad.detach())

        return hook

    @staticmethod
    def _relu_hook(pending: dict, i: int) -> Callable:
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            if pending["fired"][i] is None:  # once: an evaluation after the step must not overwrite it
                # ReLU outputs are >= 0, so a channel fired where its sum is > 0: (N, C, H, W) -> (C,).
                # sum, not amax: amax over these dims is 25x slower on the CPU (0.58 vs 0.02 ms at batch 128).
                pending["fired"][i] = output.detach().sum(dim=(0, 2, 3)) > 0

        return hook

    def _finish(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        for handle in pending["handles"]:
            handle.remove()
        nan = torch.full((), float("nan"), device=pending["before"][0].device)
        values = []  # 0-d tensors on the training device: one transfer at the end, not one per number
        for i, (before, weight) in enumerate(zip(pending["before"], pending["weights"])):
            after, grad, fired = weight.detach(), pending["grad"][i], pending["fired"][i]
            values += [
                nan if grad is None else grad,
                torch.linalg.vector_norm(after - before) / torch.linalg.vector_norm(before),
                nan if fired is None else 1 - fired.float().mean(),
                torch.linalg.vector_norm(after),
            ]
        self._unread.append((pending, torch.stack([v.float() for v in values])))

    def _emit(self) -> None:
        """Read the computed measurements (one transfer each) and hand them on, in order."""
        unread, self._unread = self._unread, []
        for pending, values in unread:
            numbers = values.tolist()
            stats = HealthStats(step=pending["step"], layers={})
            for i, name in enumerate(pending["names"]):
                grad, ratio, dead, norm = numbers[4 * i : 4 * i + 4]
                stats.layers[name] = LayerHealth(grad, ratio, dead if pending["relu"][i] else None, norm)
            self.latest = stats
            if self.on_stats is not None:
                self.on_stats(stats)


def _and(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return _("{names} and {last}").format(names=_(", ").join(names[:-1]), last=names[-1])


def health_flags(stats: HealthStats, loss: float | None = None) -> list[str]:
    """Plain-words warnings for the numbers of one measured step; an empty list when nothing looks wrong.
    ``loss``: the run's recent batch loss; near 0 small updates mean it has converged, not stalled."""
    layers = stats.layers
    broken = [n for n, h in layers.items() if not all(map(math.isfinite, (h.grad_norm, h.weight_norm)))]
    if broken:
        return [
            _(
                "the gradients or weights of {layers} are no longer finite numbers: the run has blown up; lower the "
                "learning rate (for example 10x)"
            ).format(layers=_and(broken))
        ]
    flags = []
    dead = [n for n, h in layers.items() if h.dead_share is not None and h.dead_share >= 1]
    if dead:
        flags.append(
            _(
                "every ReLU in {layers} is dead (it outputs 0 for every image): the learning rate is too high, and no "
                "gradient flows back through a dead layer, so the network cannot recover; start again with a lower "
                "learning rate"
            ).format(layers=_and(dead))
        )
    for name, h in layers.items():
        if h.dead_share is not None and DEAD_MANY <= h.dead_share < 1:
            flags.append(
                _(
                    "{share:.0%} of the ReLUs in {layer} are dead (they output 0 for every image of the batch): the "
                    "learning rate may be too high"
                ).format(share=h.dead_share, layer=name)
            )
    exploding = [n for n, h in layers.items() if h.grad_norm > EXPLODING_GRAD]
    if exploding:
        worst = max(layers[n].grad_norm for n in exploding)
        flags.append(
            _("the gradients are exploding (norm {norm:.0e} in {layers}): lower the learning rate").format(
                norm=worst, layers=_and(exploding)
            )
        )
    jumps = {n: h.update_ratio for n, h in layers.items() if h.update_ratio > JUMP_RATIO}
    if jumps:
        name = max(jumps, key=jumps.get)
        flags.append(
            _(
                "one step changed the weights of {layer} by {change:.0%}, more than their own size: the learning rate "
                "is too high, the loss will jump around or the ReLUs will die"
            ).format(layer=name, change=jumps[name])
        )
    ratios = [h.update_ratio for h in layers.values() if math.isfinite(h.update_ratio)]
    converged = loss is not None and loss < CONVERGED_LOSS
    if not dead and ratios and max(ratios) < STALLED_RATIO and not converged:
        flags.append(
            _(
                "updates are {ratio:.0e} of the weights: learning is stalled; raise the learning rate (about 1e-3 of "
                "the weights per step is a healthy pace)"
            ).format(ratio=max(ratios))
        )
    return flags


def health_summary(stats: HealthStats, loss: float | None = None) -> str:
    """What a step with no warning looks like, in its own numbers (the table's), for the learner."""
    ratios = [h.update_ratio for h in stats.layers.values() if math.isfinite(h.update_ratio)]
    if loss is not None and loss < CONVERGED_LOSS:
        return _(
            "Nothing looks wrong: the batch loss is {loss:.1g}, so the model fits its training batches and the steps "
            "are small; watch the test accuracy, not the training loss, from here."
        ).format(loss=loss)
    if not ratios:
        return _("Nothing looks wrong.")
    return _(
        "Nothing looks wrong: each step moves the layers' weights by {low:.1e} to {high:.1e} of their size, between "
        "a stall (under {stall:.0e}) and a jump (over {jump:.0%})."
    ).format(low=min(ratios), high=max(ratios), stall=STALLED_RATIO, jump=JUMP_RATIO)
