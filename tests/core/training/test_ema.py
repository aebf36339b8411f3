"""Lookahead (core/training/ema.py): the weights are pulled onto a slow copy every few steps and end on it."""
import torch
from torch import nn

from core.training.ema import SLOW, Lookahead


def _set(weight: nn.Parameter, value: float) -> None:
    """Stand in for an optimiser step that left the weight at `value`."""
    with torch.no_grad():
        weight.fill_(value)
    weight.grad = torch.zeros_like(weight)


def test_the_weights_are_pulled_towards_the_slow_copy_and_end_on_it():
    layer = nn.Linear(2, 1, bias=False)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    lookahead = Lookahead(optimizer, every=2, total_steps=5, decay=0.8)
    w = layer.weight
    _set(w, 1.0)
    lookahead.after_step(1)
    assert torch.all(w == 1.0) and SLOW not in optimizer.state[w], "no sync between the every-th steps"
    _set(w, 2.0)
    lookahead.after_step(2)  # the first sync: the slow copy starts from the weights
    assert torch.all(w == 2.0) and torch.all(optimizer.state[w][SLOW] == 2.0)
    _set(w, 3.0)
    lookahead.after_step(3)
    _set(w, 6.0)
    lookahead.after_step(4)  # decay 0.8 * (4/5)^3: the slow copy moves part of the way, the weights follow it
    pulled = 2.0 + (1 - 0.8 * (4 / 5) ** 3) * (6.0 - 2.0)
    torch.testing.assert_close(w, torch.full_like(w, pulled))
    assert torch.equal(optimizer.state[w][SLOW], w.detach())
    _set(w, 10.0)
    lookahead.after_step(5)  # the last step: the weights become the slow copy, the last fast step dropped
    torch.testing.assert_close(w, torch.full_like(w, pulled))
    assert torch.equal(optimizer.state[w][SLOW], w.detach())


def test_the_slow_copy_is_saved_with_the_optimiser():
    layer = nn.Linear(2, 1)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    Lookahead(optimizer, every=1, total_steps=10).after_step(1)
    saved = optimizer.state_dict()["state"]
    assert all(SLOW in saved[i] and "exp_avg" in saved[i] for i in (0, 1))
    fresh = torch.optim.Adam(nn.Linear(2, 1).parameters())
    fresh.load_state_dict(optimizer.state_dict())
    assert [fresh.state[p][SLOW].tolist() for p in fresh.param_groups[0]["params"]] == \
        [optimizer.state[p][SLOW].tolist() for p in layer.parameters()]

