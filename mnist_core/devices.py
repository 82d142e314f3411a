"""Where a run trains: CPU, CUDA or Apple's MPS, chosen at run time, and its name for a learner."""

from __future__ import annotations

import os

import torch

from .i18n import _


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; a named device that is missing is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise ValueError(_("device 'cuda' was asked for, but no CUDA GPU is available; use auto or cpu."))
    if name == "mps" and not mps:
        raise ValueError(_("device 'mps' was asked for, but Apple MPS is not available; use auto or cpu."))
    return torch.device(name)


def available_devices() -> list[str]:
    """The device choices that work on this machine: auto and cpu, plus cuda and mps where present."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def device_label(device: torch.device, cpu_threads: int | None = None) -> str:
    """'CPU (N threads)' (``cpu_threads``, else this process's count now), or the GPU's name, in the language in
    use (a run saves it in English: ``runs`` asks for it inside ``i18n.using("en")``)."""
    if device.type == "cuda":
        return _("CUDA GPU: {name}").format(name=torch.cuda.get_device_name(device))
    if device.type == "mps":
        return _("Apple GPU (MPS)")
    threads = cpu_threads or torch.get_num_threads()
    cores = os.cpu_count() or threads
    # a run on a busy machine may end on fewer threads than the sidebar's count: say of how many cores. Not
    # ngettext: a saved label is translated back by i18n.stored(), which knows only messages without plurals.
    if threads < cores:
        label = _("CPU (1 thread of {cores} cores)") if threads == 1 else _("CPU ({threads} threads of {cores} cores)")
    else:
        label = _("CPU (1 thread)") if threads == 1 else _("CPU ({threads} threads)")
    return label.format(threads=threads, cores=cores)
