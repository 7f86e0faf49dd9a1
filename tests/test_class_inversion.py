"""Contracts of class inversion (PII, DeepDream, DeepInversion, feature visualization) on tiny models."""
import math

import pytest
import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from inversion.class_inversion import (BatchNormStatistics, ColorShift, DeepDreamConfig, DeepInversionConfig,
                                       Ensemble, Flip, Jitter, PIIConfig, Step, deep_inversion, grow,
                                       inception_style_score, invert, judge, mean_over_other_judges, pii,
                                       resize, topk_accuracy, unit_activations, visualize_units, vit_ffn_layer,
                                       zoom_stages, cross_model_matrix, TotalVariation)
from inversion.models import Classifier, InputConfig

SMALL = InputConfig(input_size=(3, 16, 16), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), num_classes=4)


def tiny_cnn(seed=0, bn=True) -> Classifier:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8) if bn else nn.Identity(), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8) if bn else nn.Identity(),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    net[-1].weight.data.mul_(20)  # confident logits, so that inversion has something to optimize
    if bn:  # non-trivial running statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model = Classifier(net, SMALL, "tiny-cnn").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def tiny_vit() -> Classifier:
    torch.manual_seed(0)
    net = VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0,
                            num_classes=4)
    model = Classifier(net, SMALL, "tiny-vit").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


FAST = PIIConfig(steps_per_stage=6, stages=3, copies=3, lr=0.05, stage_input="upsample")


# --- augmentations ------------------------------------------------------------------------------
def test_jitter_is_a_per_image_circular_shift_and_seeded():
    x = torch.rand(5, 3, 12, 12)
    y = Jitter(3)(x, gen(1))
    assert y.shape == x.shape
    for i in range(5):  # each image equals torch.roll of itself by some shift within the range
        matches = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                   if torch.equal(y[i], torch.roll(x[i], (dy, dx), dims=(1, 2)))]
        assert matches, f"image {i} is not a circular shift of at most 3 px"
    assert torch.equal(y, Jitter(3)(x, gen(1)))
    assert not torch.equal(y, Jitter(3)(x, gen(2)))
    assert torch.equal(Jitter(0)(x, gen(1)), x)
    shifts = {tuple(torch.nonzero(Jitter(3)(x[:1], gen(s))[0, 0] == x[0, 0, 0, 0]).tolist()[0]) for s in range(40)}
    assert len(shifts) > 5, "jitter should draw different shifts for different seeds"


def test_jitter_is_differentiable():
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    Jitter(2)(x, gen()).pow(2).sum().backward()
    assert torch.allclose(x.grad, 2 * x.detach())  # a permutation: gradient flows back one-to-one


def test_flip_and_ensemble_contracts():
    x = torch.rand(64, 3, 6, 6)
    y = Flip(0.5)(x, gen())
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(-1)) for i in range(64)])
    same = torch.tensor([torch.equal(y[i], x[i]) for i in range(64)])
    assert (flipped | same).all() and 10 < flipped.sum() < 54
    e = Ensemble(4)(x[:3], gen())
    assert e.shape == (12, 3, 6, 6) and torch.equal(e[4:8], x[1:2].expand(4, -1, -1, -1))
    with pytest.raises(ValueError):
        Ensemble(0)


def test_color_shift_statistics_and_resampling():
    cs = ColorShift(1.0, 1.0)
    mu, sigma = cs.sample(20000, 3, gen(0), torch.zeros(1))
    assert mu.shape == (20000, 3, 1, 1)
    assert mu.abs().max() <= 1 and abs(mu.mean()) < 0.02 and abs(mu.std() - 1 / math.sqrt(3)) < 0.01
    log_sigma = sigma.log()
    assert log_sigma.abs().max() <= 1 + 1e-6 and abs(log_sigma.std() - 1 / math.sqrt(3)) < 0.01
    # applied per copy and channel: sigma * x + mu on a constant image reveals (mu, sigma)
    g = gen(3)
    x = torch.full((6, 3, 4, 4), 0.5)
    y1, y2 = cs(x, g), cs(x, g)
    assert not torch.allclose(y1, y2), "ColorShift must be resampled at every call"
    assert (y1.flatten(2).std(dim=2) < 1e-6).all() and y1[:, :, 0, 0].unique().numel() == 18
    mu2, sigma2 = ColorShift(0.3, 0.2).sample(5000, 3, gen(0), torch.zeros(1))
    assert mu2.abs().max() <= 0.3 and sigma2.log().abs().max() <= 0.2 + 1e-6
    assert torch.equal(ColorShift(0, 0)(x, gen()), x)


def test_zoom_schedule_sizes_and_growth():
    assert zoom_stages(32) == [8, 12, 16, 20, 24, 28, 32]
    assert zoom_stages(224) == [56, 84, 112, 140, 168, 196, 224]
    assert zoom_stages(32, 1) == [32]
    first = grow(None, 8, 0, 2, gen())
    assert first.shape == (2, 3, 8, 8) and 0 <= first.min() and first.max() <= 1
    zoomed = grow(first, 12, 0, 2, gen())
    assert torch.allclose(zoomed, resize(first, 12))
    centred = grow(first, 12, 2, 2, gen())
    assert torch.allclose(centred[:, :, 2:10, 2:10], resize(first, 8))
    assert not torch.allclose(centred[:, :, :2], zoomed[:, :, :2])


# --- losses -----------------------------------------------------------------------------------------
def _bn_inputs(model, x):
    seen = []
    hooks = [m.register_forward_pre_hook(lambda m, i: seen.append(i[0])) for m in BatchNormStatistics.layers(model)]
    model(x)
    for h in hooks:
        h.remove()
    return seen


def test_bn_statistics_loss_is_zero_at_the_running_statistics():
    model, x = tiny_cnn(), torch.rand(8, 3, 16, 16)
    term = BatchNormStatistics(first_layer_weight=10)
    term.attach(model)
    model(x)
    before = term(Step(x, x, None, None)).item()
    assert before > 0.1
    for k, layer in enumerate(BatchNormStatistics.layers(model)):  # set layer by layer (later inputs change)
        h = _bn_inputs(model, x)[k]
        layer.running_mean.copy_(h.mean((0, 2, 3)))
        layer.running_var.copy_(h.var((0, 2, 3), unbiased=False))
    model(x)
    assert term(Step(x, x, None, None)).item() < 1e-5
    term.detach()
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_bn_first_layer_weight():
    model, x = tiny_cnn(), torch.rand(8, 3, 16, 16)
    values = []
    for w in (1.0, 10.0):
        term = BatchNormStatistics(first_layer_weight=w)
        term.attach(model)
        model(x)
        values.append(term(Step(x, x, None, None)).item())
        term.detach()
    h = _bn_inputs(model, x)[0]
    layer = BatchNormStatistics.layers(model)[0]
    first = ((h.mean((0, 2, 3)) - layer.running_mean).norm()
             + (h.var((0, 2, 3), unbiased=False) - layer.running_var).norm()).item()
    assert values[1] - values[0] == pytest.approx(9 * first, rel=1e-4)


@pytest.mark.parametrize("channels_last", [False, True])
def test_bn_statistics_value_and_gradient_match_torch_var(channels_last):
    """The term's moments (E[x^2] - E[x]^2, own backward) against torch.mean / torch.var with autograd."""
    model = tiny_cnn()
    x = torch.rand(6, 3, 16, 16)   # the term takes its statistics in float32
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    term = BatchNormStatistics(first_layer_weight=10)
    term.attach(model)
    grads = []
    for reference in (False, True):
        xi = x.clone().requires_grad_(True)
        if reference:
            term.detach()
            hs = _bn_inputs(model, xi)
            loss = sum((10.0 if k == 0 else 1.0) * ((h.mean((0, 2, 3)) - layer.running_mean).norm()
                                                    + (h.var((0, 2, 3), unbiased=False) - layer.running_var).norm())
                       for k, (h, layer) in enumerate(zip(hs, BatchNormStatistics.layers(model))))
        else:
            model(xi)
            loss = term(Step(xi, xi, None, None))
        loss.backward()
        grads.append((loss.item(), xi.grad))
    (ours, g_ours), (ref, g_ref) = grads
    assert ours == pytest.approx(ref, rel=1e-5)
    assert g_ref.abs().max() > 1e-3 and torch.allclose(g_ours, g_ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_bn_moments_of_a_bf16_activation_are_float32_with_a_bf16_gradient(channels_last):
    """Under bf16 autocast BatchNorm inputs are bfloat16: the moments are still float32 (equal to
    those of the float32 copy) and the gradient comes back in the input's dtype and layout."""
    from inversion.class_inversion.objectives import _ChannelMoments

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(6, 5, 8, 8, generator=g) + 0.7).to(torch.bfloat16)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    mean, mean_square = _ChannelMoments.apply(x, [0, 2, 3])
    x32 = x.detach().float().requires_grad_(True)
    assert mean.dtype == mean_square.dtype == torch.float32
    assert torch.allclose(mean, x32.mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(mean_square, (x32 * x32).mean((0, 2, 3)), rtol=1e-5)
    w1, w2 = torch.randn(5, generator=g), torch.randn(5, generator=g)
    ((mean * w1).sum() + (mean_square * w2).sum()).backward()
    ((x32.mean((0, 2, 3)) * w1).sum() + ((x32 * x32).mean((0, 2, 3)) * w2).sum()).backward()
    assert x.grad.dtype == torch.bfloat16
    assert x.grad.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert torch.allclose(x.grad.float(), x32.grad, rtol=1e-2, atol=1e-4)


def test_total_variation_absolute_and_squared_on_a_known_image():
    from inversion.losses import total_variation

    x = torch.zeros(1, 1, 2, 2)
    x[..., 1, 1] = 2.0       # one bright pixel: neighbour differences 0 and 2 along each axis
    assert total_variation(x).item() == pytest.approx(2.0)                 # mean |d|: 1 + 1
    assert total_variation(x, squared=True).item() == pytest.approx(4.0)   # mean d^2: 2 + 2
    assert TotalVariation()(Step(x, x, None, None)).item() == pytest.approx(4.0)


def test_deep_inversion_needs_batchnorm():
    with pytest.raises(ValueError, match="BatchNorm"):
        deep_inversion(tiny_cnn(bn=False), [0, 1], steps=2, progress=False)
    with pytest.raises(ValueError, match="BatchNorm"):
        invert(tiny_vit(), [0], DeepInversionConfig(steps=2), progress=False)


# --- the loop and the methods ---------------------------------------------------------------------
def test_pii_inverts_many_targets_in_one_batch():
    model = tiny_cnn()
    result = pii(model, [0, 1, 2, 3], FAST, seed=0, progress=False)
    assert result.images.shape == (4, 3, 16, 16)
    assert 0 <= result.images.min() and result.images.max() <= 1
    assert len(result.history["loss"]) == FAST.total_steps == result.steps
    assert torch.equal(result.targets, torch.arange(4))
    again = pii(model, [0, 1, 2, 3], FAST, seed=0, progress=False)
    assert torch.equal(result.images, again.images) and torch.equal(result.history["loss"], again.history["loss"])
    other = pii(model, [0, 1, 2, 3], FAST, seed=1, progress=False)
    assert not torch.allclose(result.images, other.images)
    with torch.no_grad():
        ce_noise = nn.functional.cross_entropy(model(torch.rand(4, 3, 16, 16, generator=gen(5))), torch.arange(4))
        ce_inverted = nn.functional.cross_entropy(model(result.images), torch.arange(4))
        p_noise = model(torch.rand(4, 3, 16, 16, generator=gen(5))).softmax(1).diagonal()
        p_inverted = model(result.images).softmax(1).diagonal()
    assert ce_inverted < ce_noise - 0.5
    assert (p_inverted > p_noise).all(), "every target's own image must gain probability for its target"


def test_methods_run_and_respect_their_definitions():
    model = tiny_cnn()
    dd = invert(model, [0, 3], DeepDreamConfig(steps=8, lr=0.05), progress=False)
    assert set(dd.history) == {"loss", "cross_entropy", "total_variation", "l2"} and dd.steps == 8
    images = deep_inversion(model, [1, 2], steps=8, progress=False)
    assert images.shape == (2, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    di = invert(model, [1, 2], DeepInversionConfig(steps=30, lr=0.05, tv_weight=0, l2_weight=0), progress=False)
    assert di.history["bn_statistics"][-5:].mean() < di.history["bn_statistics"][:5].mean()
    with pytest.raises(ValueError, match="class indices"):
        pii(model, [7], FAST, progress=False)
    model.train()
    with pytest.raises(ValueError, match="eval"):
        pii(model, [0], FAST, progress=False)


def test_feature_visualization_raises_its_unit():
    vit = tiny_vit()
    layer = vit_ffn_layer(vit, 1)
    assert layer == "net.blocks.1.mlp.act"
    units = torch.tensor([0, 5, 9])
    config = PIIConfig(steps_per_stage=10, stages=2, copies=2, color_shift=0.0, lr=0.1)
    result = visualize_units(vit, layer, units, config, seed=0, progress=False)
    noise = torch.rand(3, 3, 16, 16, generator=gen(7))
    rows = torch.arange(3)
    assert (unit_activations(vit, layer, result.images)[rows, units]
            > unit_activations(vit, layer, noise)[rows, units]).all()
    cnn = tiny_cnn()
    conv = visualize_units(cnn, "net.3", [1, 2], FAST, progress=False)
    assert conv.images.shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="no module"):
        visualize_units(cnn, "net.nope", [0], FAST, progress=False)


# --- evaluation -------------------------------------------------------------------------------------
def test_inception_style_score_bounds_and_topk():
    confident = torch.eye(10) * 50
    assert inception_style_score(confident) == pytest.approx(10, rel=1e-4)
    assert inception_style_score(torch.zeros(10, 10)) == pytest.approx(1.0)
    assert inception_style_score(confident[[3] * 10]) == pytest.approx(1.0, abs=1e-4)
    logits = torch.tensor([[3., 2., 1., 0.], [0., 1., 2., 3.]])
    assert topk_accuracy(logits, torch.tensor([1, 3]), 1) == 0.5
    assert topk_accuracy(logits, torch.tensor([1, 2]), 2) == 1.0


def test_cross_model_matrix_layout():
    models = {"a": tiny_cnn(0), "b": tiny_cnn(1)}
    images, targets = torch.rand(4, 3, 16, 16), torch.arange(4)
    table = judge(images, targets, models)
    assert list(table.columns) == ["top1", "top5", "is_score"] and (table["top5"] == 1.0).all()
    matrix = cross_model_matrix({"a": (images, targets), "b": (images, targets)}, models)
    assert matrix.shape == (2, 2) and list(matrix.index) == ["a", "b"]
    assert mean_over_other_judges(matrix)["a"] == pytest.approx(matrix.loc["a", "b"])


def test_benchmark_reports_side_by_side_timings():
    from inversion.class_inversion.benchmark import batching_speedup, step_overhead

    config = PIIConfig(steps_per_stage=2, stages=2, copies=2)
    overhead = step_overhead(tiny_cnn(), config, n_targets=4, repeats=1)
    assert overhead["batch"] == 8 and overhead["step_seconds"] > 0 and overhead["ratio"] > 0
    speed = batching_speedup(tiny_cnn(), config, n_targets=3)
    assert speed["targets"] == 3 and speed["speedup"] > 0


@pytest.mark.parametrize("jitter,color_shift,copies", [(2, 1.0, 3), (0, 0.5, 2), (1, 0.0, 1)])
def test_pii_fused_augmentation_equals_the_three_transforms(jitter, color_shift, copies):
    """PIIConfig's fused PIIAugment (inversion.kernels) gives the images and gradients of
    Jitter -> Ensemble -> ColorShift, with the generator left in the same state."""
    from inversion.class_inversion.augmentations import Ensemble, Jitter, PIIAugment

    config = PIIConfig(jitter=jitter, color_shift=color_shift, copies=copies)
    (fused,) = config.transforms(16)
    assert isinstance(fused, PIIAugment)
    chain = [Jitter(jitter), Ensemble(copies)] + ([ColorShift(color_shift, color_shift)] if color_shift else [])
    x = torch.rand(3, 3, 16, 16, requires_grad=True)
    g1, g2 = gen(5), gen(5)
    a = fused(x, g1)
    b = x
    for t in chain:
        b = t(b, g2)
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    w = torch.randn_like(a)
    (ga,) = torch.autograd.grad((a * w).sum(), x)
    (gb,) = torch.autograd.grad((b * w).sum(), x)
    assert torch.allclose(ga, gb, atol=1e-6)
