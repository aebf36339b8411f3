"""Tests for core/training/models/ (the registry, every architecture) and its fastnet.py (whitening net).

CPU only, tiny batches: the whole file runs in a few seconds.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from core.training import models
from core.training.models import describe_model, fastnet, get_model, list_models, register_model, registry
from core.training.models.fastnet import FastNet
from tests.helpers import register_normed_net, tiny_config

EXPECTED_NAMES = ["fastnet", "fastnet-small", "keras-cnn", "elu-convnet", "bn-elu-cnn",
                  "tutorial-cnn", "resnet20", "resnet18", "vgg11-bn"]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _correlated_images(n: int) -> torch.Tensor:
    """Random images whose channels and neighbouring pixels are correlated, with a non-zero mean."""
    z = torch.randn(n, 3, 33, 33, generator=torch.Generator().manual_seed(1))   # (N, 3, 33, 33)
    mix = torch.tensor([[1.0, 0.5, 0.2], [0.3, 1.0, 0.4], [0.1, 0.6, 1.0]])
    x = torch.einsum("dc,nchw->ndhw", mix, z)                                     # channel mixing
    x = x[..., :-1, :-1] + x[..., 1:, :-1] + x[..., :-1, 1:] + 0.5 * x[..., 1:, 1:]  # (N,3,32,32)
    return 2.0 * x + 0.7


def _trainable_grads_finite(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"no gradient for {name}"
            assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"


# ------------------------------------------------------------------ every registered model

@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    model = get_model(name).train()
    logits = model(_images(4))
    assert logits.shape == (4, 10)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.arange(4)).backward()
    _trainable_grads_finite(model)


@pytest.mark.parametrize("name", list_models())
def test_num_classes_and_channels_last(name: str) -> None:
    model = get_model(name, num_classes=7).eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        logits = model(_images(2).to(memory_format=torch.channels_last))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", list_models())
def test_describe_model_counts_parameters(name: str) -> None:
    info = describe_model(name)
    assert set(info) == {"name", "description", "parameters"}
    assert info["name"] == name
    assert info["description"].strip()
    assert info["parameters"] == sum(p.numel() for p in get_model(name).parameters())


# ------------------------------------------------------------------ registry

def test_registered_names_in_order_with_fastnet_first() -> None:
    assert list_models() == EXPECTED_NAMES


def test_duplicate_registration_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("fastnet", "another fastnet")
    # The decorator path, on a private copy of the registry so other tests see no change.
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_model("tmp-net", "a temporary net")(lambda num_classes: nn.Linear(3, num_classes))
    assert list_models()[-1] == "tmp-net"
    with pytest.raises(ValueError, match="'tmp-net' is already registered"):
        register_model("tmp-net", "again")(lambda num_classes: nn.Linear(3, num_classes))


def test_empty_description_refused() -> None:
    with pytest.raises(ValueError, match="description"):
        register_model("no-words", "  ")


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError) as err:
        get_model("nope")
    assert str(err.value) == "Unknown model 'nope'; choose one of: " + ", ".join(EXPECTED_NAMES)
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        describe_model("nope")


def test_a_settings_model_name_is_checked_against_the_registry() -> None:
    models.check_model_name("resnet20")
    with pytest.raises(ValueError) as err:
        models.check_model_name("resnet1000")
    assert str(err.value) == f"model must be one of {', '.join(EXPECTED_NAMES)}, got 'resnet1000'."


@pytest.mark.parametrize("bad", [0, 1, -3, 2.5, True, "10"])
def test_bad_num_classes_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        get_model("tutorial-cnn", num_classes=bad)  # type: ignore[arg-type]


def test_describe_model_is_cached() -> None:
    describe_model("resnet20")
    hits = registry._parameter_count.cache_info().hits
    describe_model("resnet20")
    assert registry._parameter_count.cache_info().hits == hits + 1


# ------------------------------------------------------------------ fastnet

def test_whitening_gives_identity_patch_covariance() -> None:
    model = FastNet(widths=(8, 8, 8))
    images = _correlated_images(200)
    model.init_from_data(images)
    weight = model.whiten.weight                                       # (24, 3, 2, 2)
    out = F.conv2d(images, weight[:12])                                # (N, 12, 31, 31) no bias
    rows = out.permute(0, 2, 3, 1).reshape(-1, 12).double()            # (N*31*31, 12)
    cov = torch.cov(rows.T, correction=0)                              # (12, 12)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=0.01)
    # The other 12 filters are the negatives, so GELU keeps both signs of each direction.
    assert torch.equal(weight[12:], -weight[:12])
    # Sanity: before whitening the patches were far from decorrelated.
    raw = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    assert (torch.cov(raw.T.double()) - torch.eye(12, dtype=torch.float64)).abs().max() > 1


def test_whitening_is_frozen_and_bias_trainable() -> None:
    model = FastNet()
    assert not model.whiten.weight.requires_grad
    assert model.whiten.bias is not None and model.whiten.bias.requires_grad


def test_whitening_deterministic_dtype_safe_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    images = _correlated_images(80)
    a, b, c = FastNet(widths=(8, 8, 8)), FastNet(widths=(8, 8, 8)), FastNet(widths=(8, 8, 8))
    a.init_from_data(images)
    b.init_from_data(images.clone())
    assert torch.equal(a.whiten.weight, b.whiten.weight)
    c.init_from_data(images.bfloat16())       # bf16 input: statistics still computed in float64
    assert torch.isfinite(c.whiten.weight).all()
    assert torch.allclose(c.whiten.weight, a.whiten.weight, rtol=0.05, atol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):   # called inside autocast: same filters
        c.init_from_data(images)
    assert torch.equal(c.whiten.weight, a.whiten.weight)
    # Only the first WHITEN_MAX_IMAGES images are used.
    monkeypatch.setattr(fastnet, "WHITEN_MAX_IMAGES", 50)
    a.init_from_data(images)
    b.init_from_data(images[:50])
    assert torch.equal(a.whiten.weight, b.whiten.weight)


@pytest.mark.parametrize("bad", [torch.zeros(4, 1, 32, 32), torch.zeros(3, 32, 32),
                                 torch.zeros(0, 3, 32, 32),
                                 torch.zeros(4, 3, 32, 32, dtype=torch.uint8)])
def test_whitening_rejects_bad_images(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="init_from_data"):
        FastNet().init_from_data(bad)


def test_batchnorm_scale_frozen_shift_trainable() -> None:
    norms = [m for m in get_model("fastnet").modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    for bn in norms:
        assert not bn.weight.requires_grad and torch.equal(bn.weight, torch.ones_like(bn.weight))
        assert bn.bias.requires_grad
        assert bn.momentum == pytest.approx(0.4) and bn.eps <= 1e-5


def test_convs_start_as_identity() -> None:
    stage = get_model("fastnet").stages[0]
    x = torch.randn(2, 24, 8, 8)
    first = F.conv2d(x, stage.enter.conv.weight, padding=1)            # (2, 64, 8, 8)
    assert torch.allclose(first[:, :24], x)                 # dirac on the first 24 filters
    assert torch.allclose(F.conv2d(first, stage.refine.conv.weight, padding=1), first)


def test_a_stage_is_conv_pool_norm_act_then_conv_norm_act() -> None:
    """The record runs' block, computed here op by op from the stage's own weights."""
    stage = get_model("fastnet-small").stages[1].train()
    x = torch.randn(4, 32, 16, 16)
    enter, refine = stage.enter, stage.refine

    def norm(t: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
        return F.batch_norm(t, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)

    h = F.gelu(norm(F.max_pool2d(F.conv2d(x, enter.conv.weight, padding=1), 2), enter.norm))  # (4, 64, 8, 8)
    expected = F.gelu(norm(F.conv2d(h, refine.conv.weight, padding=1), refine.norm))         # (4, 64, 8, 8)
    torch.testing.assert_close(stage(x), expected)


def test_fastnet_widths_and_head() -> None:
    big, small = get_model("fastnet"), get_model("fastnet-small")
    assert [s.refine.conv.out_channels for s in big.stages] == [64, 256, 256]
    assert [s.refine.conv.out_channels for s in small.stages] == [32, 64, 128]
    assert big.whiten.out_channels == 24 and big.whiten.kernel_size == (2, 2)
    assert big.head.bias is None and big.logit_scale == pytest.approx(1 / 9)
    assert not any(isinstance(m, nn.Conv2d) and m.bias is not None for m in big.stages.modules())


@pytest.mark.parametrize("name", ["fastnet", "fastnet-small"])
def test_fastnet_bf16_autocast_channels_last(name: str) -> None:
    model = get_model(name).to(memory_format=torch.channels_last).train()
    model.init_from_data(_correlated_images(40).to(memory_format=torch.channels_last))
    x = _images(4).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), torch.arange(4))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    loss.backward()
    _trainable_grads_finite(model)


def test_fastnet_state_dict_keeps_whitening() -> None:
    model = get_model("fastnet-small").eval()
    model.init_from_data(_correlated_images(40))
    restored = get_model("fastnet-small").eval()
    restored.load_state_dict(model.state_dict())
    x = _images(3)
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))


# ------------------------------------------------------------------ other architectures

def test_resnet18_is_torchvision_adapted_for_32px() -> None:
    model = get_model("resnet18")
    assert isinstance(model, torchvision.models.ResNet)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)


def test_resnet20_size_and_option_a_shortcuts() -> None:
    model = get_model("resnet20")
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - 270_000) <= 0.05 * 270_000
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 20          # 19 convs + fc; shortcuts carry no weights
    assert sorted({c.out_channels for c in convs}) == [16, 32, 64]


def test_vgg11_bn_reduces_to_512_features() -> None:
    model = get_model("vgg11-bn").eval()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == 8
    with torch.no_grad():
        assert model.features(_images(1)).shape == (1, 512, 1, 1)


def test_tutorial_cnn_matches_tutorial_size() -> None:
    assert describe_model("tutorial-cnn")["parameters"] == 62_006


# ------------------------------------------------------------------ parameter groups


def test_a_model_without_declared_groups_gets_one_group_of_its_trainable_parameters() -> None:
    model = get_model("tutorial-cnn")
    model.conv1.bias.requires_grad_(False)
    [group] = models.parameter_groups(model, tiny_config(model="tutorial-cnn"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert group.keys() == {"params"} and [id(p) for p in group["params"]] == [id(p) for p in trainable]
    assert len(trainable) == len(list(model.parameters())) - 1, "a frozen parameter stays out"


def test_declared_groups_are_what_the_optimiser_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    register_normed_net(monkeypatch)
    model = get_model("normed-net")
    model.norm.weight.requires_grad_(False)  # a frozen parameter is left out of its group
    rest, norm = models.parameter_groups(model, tiny_config(model="normed-net"))
    assert [id(p) for p in norm["params"]] == [id(model.norm.bias)]
    assert norm["lr_scale"] == 4.0 and norm["weight_decay"] == 0.0 and "lr_scale" not in rest


@pytest.mark.parametrize("groups, words", [
    (lambda m, cfg: [{"params": list(m.conv.parameters())}], "exactly once"),
    (lambda m, cfg: [{"params": list(m.parameters())}, {"params": [m.head.bias]}], "exactly once"),
    (lambda m, cfg: [{"params": list(m.parameters()), "lr_scale": 0}], "lr_scale"),
    (lambda m, cfg: [{"params": list(m.parameters()), "train_epochs": -1}], "train_epochs"),
])
def test_groups_that_miss_or_repeat_a_parameter_are_refused(monkeypatch: pytest.MonkeyPatch, groups,
                                                           words: str) -> None:
    register_normed_net(monkeypatch, groups)
    with pytest.raises(ValueError, match=words):
        models.parameter_groups(get_model("normed-net"), tiny_config(model="normed-net"))


@pytest.mark.parametrize("name", ["fastnet", "fastnet-small"])
def test_fastnet_groups_speed_up_the_norm_shifts_at_the_same_decay_per_step(name: str) -> None:
    """airbench: BatchNorm shifts at 64x the rate and 1/64 the decay; the whitening bias trained for 3 epochs."""
    model = get_model(name)
    cfg = tiny_config(model=name, optimizer="sgd", weight_decay=1.33e-3, norm_bias_lr_scale=64.0,
                      whiten_bias_epochs=3.0)
    rest, shifts, whiten = models.parameter_groups(model, cfg)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [id(p) for p in shifts["params"]] == [id(m.bias) for m in norms]
    assert shifts["lr_scale"] == 64.0 and shifts["lr_scale"] * shifts["weight_decay"] == pytest.approx(1.33e-3)
    assert whiten == {"params": [model.whiten.bias], "train_epochs": 3.0}
    assert "lr_scale" not in rest and "weight_decay" not in rest and len(rest["params"]) == 7  # 6 convs + head
    # Off (the defaults): one rate and one decay for all, the whitening bias never held still.
    rest, shifts, whiten = models.parameter_groups(model, tiny_config(model=name, weight_decay=5e-4))
    assert (shifts["lr_scale"], shifts["weight_decay"]) == (1.0, 5e-4) and "train_epochs" not in whiten
