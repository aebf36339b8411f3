"""Averages of a model's weights: `WeightAverage`, which the engine evaluates when `ema` is on, and
`Lookahead`, which pulls the training weights back onto a slow average of them every few steps.

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


# airbench94's pull at the end of training, per sync: 0.95 a step compounded over its 5 steps between syncs.
LOOKAHEAD_DECAY = 0.95 ** 5
SLOW = "lookahead_slow"  # the slow copy's key in the optimiser's per-parameter state


class Lookahead:
    """Every `every` steps the slow copy moves towards the weights and the weights are put back onto it
    (airbench94's LookaheadState); after the last step the weights become the slow copy.

    The pull grows with the cube of the run's progress (airbench94): early on the weights are still far from
    good and barely held back, late in training they are smoothed over the last few syncs. The slow copy lives
    in the optimiser's state, beside the momentum (as timm's Lookahead keeps it), so it is saved and restored
    with every checkpoint. BatchNorm's running statistics are not averaged: they follow the weights each step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, every: int, total_steps: int,
                 decay: float = LOOKAHEAD_DECAY):
        self.optimizer, self.every, self.total_steps, self.decay = optimizer, every, max(total_steps, 1), decay

    def after_step(self, steps_done: int) -> None:
        """Call after each optimiser step with the number of steps done (from 1)."""
        if steps_done % self.every == 0:
            self._sync(self.decay * (steps_done / self.total_steps) ** 3)
        if steps_done == self.total_steps:
            self._sync(1.0)  # the slow copy as it stands, without the last fast steps

    @torch.no_grad()
    def _sync(self, decay: float) -> None:
        # A parameter without a gradient has not moved (and Adam has not made its state yet): nothing to average.
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        states = [self.optimizer.state[p] for p in params]
        for p, state in zip(params, states):
            if SLOW not in state:  # the first sync: the slow copy starts from the weights (a host-side look-up)
                state[SLOW] = p.detach().clone()
        slow, fast = [state[SLOW] for state in states], [p.detach() for p in params]
        torch._foreach_lerp_(slow, fast, 1.0 - decay)
        torch._foreach_copy_(fast, slow)
