"""An exponential moving average of a model's weights, which the engine evaluates when `ema` is on.

torch.optim.swa_utils.AveragedModel decides whether an update is the first by reading its
`n_averaged` counter on the host, which waits for the device twice a step wherever that counter
lives. Here the caller passes the step number it already counts on the host, so an update is queued
like any other device work, and a resumed run carries on averaging instead of starting again.
"""
from __future__ import annotations

import copy
import itertools

import torch
from torch import Tensor, nn


class WeightAverage:
    """`module` is a copy of the model (same device and layout) holding the average of its weights and buffers."""

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average towards `model`; at step 0 (no update before this one) it becomes the model."""
        averaged, current = _tensors(self.module), _tensors(model)
        if step == 0:
            torch._foreach_copy_(averaged, current)
            return
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1.0 - self.decay)
        for a, c in zip(averaged, current):
            if not a.is_floating_point():  # BatchNorm's batch counters: whole numbers, copied
                a.copy_(c)


def _tensors(model: nn.Module) -> list[Tensor]:
    """Parameters then buffers, detached: the same order for the model and its copy."""
    return [t.detach() for t in itertools.chain(model.parameters(), model.buffers())]
