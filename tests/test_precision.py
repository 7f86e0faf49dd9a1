"""The speed switches of class inversion: zoom stages at their own size, bf16 autocast, channels_last,
one class per run (the legacy mode), on tiny models with fixed seeds."""
import pytest
import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from inversion import precision
from inversion.class_inversion import (DeepInversionConfig, PIIConfig, accepts_size, invert, legacy_mode,
                                       resolve_stage_input, visualize_units, with_overrides, with_speed)
from inversion.models import Classifier, InputConfig
from inversion.class_inversion.augmentations import PIIAugment

SMALL = InputConfig(input_size=(3, 16, 16), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), num_classes=4)
FAST = PIIConfig(steps_per_stage=4, stages=3, copies=2, lr=0.05)


def frozen(net: nn.Module, name: str) -> Classifier:
    model = Classifier(net, SMALL, name).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def tiny_cnn() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    net[-1].weight.data.mul_(20)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return frozen(net, "tiny-cnn")


def tiny_vit() -> Classifier:
    torch.manual_seed(0)
    return frozen(VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0,
                                    num_classes=4), "tiny-vit")


def seen_sizes(model: nn.Module, config, targets=(0, 1)) -> list[int]:
    sizes = []
    hook = model.register_forward_pre_hook(lambda m, inputs: sizes.append(inputs[0].shape[-1]))
    try:
        invert(model, list(targets), config, seed=0, progress=False)
    finally:
        hook.remove()
    return sizes


def test_fully_convolutional_model_sees_each_stage_at_its_own_size():
    model = tiny_cnn()
    assert accepts_size(model, 8) and resolve_stage_input(model, FAST) == "stage"
    sizes = seen_sizes(model, FAST)
    # the probe of "auto" sees the smallest stage once, then 4 steps at each of 8, 12, 16 px
    assert sizes == [8] + [8] * 4 + [12] * 4 + [16] * 4
    up = seen_sizes(model, with_overrides(FAST, stage_input="upsample"))
    assert up == [16] * 12
    result = invert(model, [0, 1], FAST, progress=False)
    assert result.images.shape == (2, 3, 16, 16) and 0 <= result.images.min() and result.images.max() <= 1


def test_fixed_size_models_keep_the_upsampling():
    vit = tiny_vit()
    assert not accepts_size(vit, 8)
    assert resolve_stage_input(vit, FAST) == "upsample"
    assert seen_sizes(vit, FAST) == [8] + [16] * 12  # the failed probe, then every step upsampled
    with pytest.raises(AssertionError, match="doesn't match model"):   # timm's patch embedding checks the size
        invert(vit, [0], with_overrides(FAST, stage_input="stage"), progress=False)
    with pytest.raises(ValueError, match="stage_input"):
        PIIConfig(stage_input="native")


def test_jitter_range_shrinks_with_the_stage_it_is_applied_at():
    config = PIIConfig(jitter=4)
    assert config.transforms(16)[0].max_shift == 4
    assert config.transforms(16, seen=8)[0].max_shift == 2
    assert isinstance(PIIConfig().transforms(32, seen=8)[0], PIIAugment)  # jitter, fused with the ensemble and ColorShift
    assert PIIConfig().transforms(32, seen=8)[0].max_shift == round(round(32 / 7) * 8 / 32)


def test_legacy_mode_is_one_class_per_run_fp32_upsampled():
    model = tiny_cnn()
    legacy = legacy_mode(with_overrides(FAST, precision="bf16", channels_last=True))
    assert (legacy.stage_input, legacy.targets_per_run, legacy.precision, legacy.channels_last) == \
        ("upsample", 1, "fp32", False)
    assert legacy.steps_per_stage == FAST.steps_per_stage and legacy.copies == FAST.copies
    together = invert(model, [0, 1, 2], legacy, seed=3, progress=False)
    one_by_one = [invert(model, [t], with_overrides(legacy, targets_per_run=None), seed=3 + i, progress=False)
                  for i, t in enumerate([0, 1, 2])]
    assert torch.equal(together.images, torch.cat([r.images for r in one_by_one]))
    assert torch.equal(together.targets, torch.tensor([0, 1, 2]))
    assert together.steps == FAST.total_steps and len(together.history["loss"]) == FAST.total_steps
    assert abs(together.seconds - sum(r.seconds for r in one_by_one)) < 5 * max(r.seconds for r in one_by_one) + 1


def test_bf16_is_deterministic_and_close_to_fp32():
    model = tiny_cnn()
    config = with_overrides(FAST, precision="bf16", channels_last=True)
    a = invert(model, [0, 1, 2, 3], config, seed=0, progress=False)
    b = invert(model, [0, 1, 2, 3], config, seed=0, progress=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.history["loss"], b.history["loss"])
    assert a.images.dtype == torch.float32 and a.history["loss"].dtype == torch.float32
    fp32 = invert(model, [0, 1, 2, 3], FAST, seed=0, progress=False)
    assert not torch.equal(a.images, fp32.images)  # bf16 really ran
    assert (a.history["loss"][:1] - fp32.history["loss"][:1]).abs().max() < 0.1  # same first step within bf16 error
    di = with_overrides(DeepInversionConfig(steps=4, lr=0.05), precision="bf16")
    r1, r2 = (invert(model, [0, 1], di, seed=1, progress=False) for _ in range(2))
    assert torch.equal(r1.images, r2.images) and r1.history["bn_statistics"].dtype == torch.float32


def test_channels_last_matches_fp32_within_float_tolerance_and_restores_the_layout():
    model = tiny_cnn()
    conv = model.net[0].weight
    cl = invert(model, [0, 1], with_overrides(FAST, channels_last=True), seed=0, progress=False)
    assert conv.is_contiguous() and model.net[0].weight.is_contiguous()
    ref = invert(model, [0, 1], FAST, seed=0, progress=False)
    assert torch.allclose(cl.history["loss"], ref.history["loss"], atol=1e-4)
    assert (cl.images - ref.images).abs().max() < 1e-2


def test_feature_visualization_takes_the_same_switches():
    model = tiny_cnn()
    config = with_overrides(FAST, precision="bf16")
    a = visualize_units(model, "net.3", [0, 1], config, seed=0, progress=False)
    b = visualize_units(model, "net.3", [0, 1], config, seed=0, progress=False)
    assert torch.equal(a.images, b.images) and a.images.shape == (2, 3, 16, 16)


def test_precision_switch_rejects_unknown_values():
    with pytest.raises(ValueError, match="precision"):
        PIIConfig(precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        precision.autocast("int8")
    with pytest.raises(ValueError, match="targets_per_run"):
        PIIConfig(targets_per_run=0)


def test_with_speed_takes_one_value_or_a_value_per_family():
    fast = {"cnn": "bf16", "vit": "fp32"}
    assert with_speed(FAST, "cnn", fast, {"cnn": True}).precision == "bf16"
    assert with_speed(FAST, "cnn", fast, {"cnn": True}).channels_last is True
    assert with_speed(FAST, "vit", fast, {"cnn": True}) == with_overrides(FAST, precision="fp32", channels_last=False)
    assert with_speed(FAST, "mlp", fast, True).precision == "fp32" and with_speed(FAST, "mlp", "bf16").precision == "bf16"
    assert with_speed(DeepInversionConfig(), "cnn", "bf16").precision == "bf16"


def test_logit_gan_step_in_bf16_is_deterministic_and_keeps_the_fp32_cache_key():
    from inversion.feedforward.discriminator import DiscriminatorConfig
    from inversion.feedforward.generator import GeneratorConfig
    from inversion.feedforward.train import FeedforwardConfig, train_logit_inverse

    g = GeneratorConfig(logit_dim=4, z_dim=8, widths=(16, 8, 8), bottom=4, embed_dim=8)
    d = DiscriminatorConfig(logit_dim=4, widths=(8, 16), downsample=(True, True))
    fp32 = FeedforwardConfig(generator=g, discriminator=d, steps=3, batch_size=8, n_train=32, n_dis=2)
    bf16 = with_overrides(fp32, precision="bf16")
    assert bf16.key() != fp32.key()
    import dataclasses
    import hashlib
    import json
    before = {k: v for k, v in dataclasses.asdict(fp32).items()
              if k not in ("precision", "channels_last")}  # the record before the fields
    assert fp32.key() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model = tiny_cnn()
    runs = [train_logit_inverse(model, images, bf16) for _ in range(2)]
    assert runs[0].log["d_loss"] == runs[1].log["d_loss"] and runs[0].log["g_loss"] == runs[1].log["g_loss"]
    z = torch.zeros(2, 8)
    logits = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(runs[0].invert(logits, z), runs[1].invert(logits, z))
    nhwc = with_overrides(bf16, channels_last=True)
    assert nhwc.key() not in (bf16.key(), fp32.key())
    nhwc_runs = [train_logit_inverse(model, images, nhwc) for _ in range(2)]
    assert nhwc_runs[0].log["g_loss"] == nhwc_runs[1].log["g_loss"]
    kernels = [p for p in nhwc_runs[0].generator.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    out = nhwc_runs[0].invert(logits, z)
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="precision"):
        with_overrides(fp32, precision="half")


def test_benchmark_helpers_time_the_switches_and_judge_with_an_interval():
    from inversion.class_inversion.benchmark import bare_step_seconds, judged_top1, modes_side_by_side, step_overhead

    model = tiny_cnn()
    assert bare_step_seconds(model, 4, repeats=1, size=8, precision="bf16", channels_last=True) > 0
    assert model.net[0].weight.is_contiguous()
    fast = with_overrides(FAST, steps_per_stage=1, precision="bf16", channels_last=True)
    overhead = step_overhead(model, fast, n_targets=2, repeats=1)
    assert overhead["batch"] == 2 * fast.copies and overhead["ratio"] > 0
    images, targets = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1])
    q = judged_top1(images, targets, {"a": model, "b": tiny_cnn()})
    assert q["top1_low"] <= q["top1"] <= q["top1_high"] and q["images"] == 6
    hits = (model(images).argmax(1) == targets).float().mean().item()
    assert judged_top1(images, targets, {"a": model})["top1"] == pytest.approx(hits)
    rows = modes_side_by_side(model, {"legacy": legacy_mode(fast), "fast": fast}, {"j": tiny_cnn()},
                              torch.tensor([0, 1]), seeds=[0, 1], threads=1)
    assert [r["mode"] for r in rows] == ["legacy", "fast"] and all(r["images"] == 4 for r in rows)
    assert all(r["seconds_per_image"] > 0 and r["threads"] == 1 for r in rows)


def test_allow_tf32_switches_float32_matmuls_and_restores():
    from inversion.precision import allow_tf32

    before = torch.get_float32_matmul_precision()
    try:
        allow_tf32(False)
        assert allow_tf32(True) is False
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32
        assert allow_tf32(False) is True and torch.get_float32_matmul_precision() == "highest"
        assert not torch.backends.cuda.matmul.allow_tf32
        a, b = torch.randn(64, 64), torch.randn(64, 64)
        reference = a @ b
        allow_tf32(True)
        assert torch.equal(a @ b, reference)   # on the CPU the switch changes nothing
    finally:
        torch.set_float32_matmul_precision(before)


def test_eager_attention_switches_every_timm_block_and_keeps_the_outputs_and_gradients():
    model = tiny_vit()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
    fused_out = model(x)
    (fused_grad,) = torch.autograd.grad(fused_out.sum(), x)
    assert precision.eager_attention(model) == 1   # depth 1: one attention block
    assert not any(getattr(m, "fused_attn", False) for m in model.modules())
    eager_out = model(x)
    (eager_grad,) = torch.autograd.grad(eager_out.sum(), x)
    torch.testing.assert_close(eager_out, fused_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eager_grad, fused_grad, rtol=1e-4, atol=1e-6)
    assert precision.eager_attention(tiny_cnn()) == 0   # nothing to switch in a CNN


def test_models_loaded_on_the_cpu_use_eager_attention():
    from inversion.models import load
    model = load("vit", "smoke", train_if_missing=True)   # trained in seconds if missing
    blocks = [m for m in model.modules() if hasattr(m, "fused_attn")]
    assert blocks and not any(m.fused_attn for m in blocks)
