"""Zero-shot divide-and-conquer inversion (inversion.zeroshot): splitting, inverse shapes, losses,
the no-real-data guarantee, training, and the GAN pieces. Tiny random networks, CPU, seconds."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn

from inversion.models import architectures, cifar_resnet
from inversion.models.architectures import Classifier, InputConfig
from inversion.zeroshot import (KINDS, InverseChain, InverseConfig, RealDataError, ZeroShotObjective,
                                assert_synthetic, block_wise_loss, cycle_loss, fit_inverse, input_space_loss,
                                make_source, split, train_inverse, zero_shot_loss)
from inversion.zeroshot.gan import (Generator, LatentPrior, frechet_distance, generator_chain, repair,
                                    search_latent)
from inversion.metrics import psnr
from inversion.zeroshot.train import config_key
from inversion.zeroshot.synthetic import NOISE_KINDS, RealImages, make_generator
from inversion.zeroshot.train import invert_activations_by_optimization, reconstruct


def _classifier(net: nn.Module, size: int = 32) -> Classifier:
    torch.manual_seed(0)
    model = Classifier(net, InputConfig(input_size=(3, size, size)), "tiny").eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("build, cuts, size", [
    (lambda: architectures.resnet(channels=(8, 16, 16), blocks=(1, 1, 1)), ["stem", "layer1", "layer2", "head"], 32),
    (lambda: architectures.vgg(channels=(8, 8, 16)), ["stage1", "stage2", "head"], 32),
    (lambda: cifar_resnet.CifarResNet(20), ["relu", "layer1", "layer2.1", "linear"], 32),
    (lambda: architectures.vit(depth=2, embed_dim=24, num_heads=2), ["patch_embed", "blocks.0", "head"], 32),
])
def test_split_composes_to_the_model(build, cuts, size):
    torch.manual_seed(0)
    model = _classifier(build(), size)
    chain = split(model, cuts)
    x = torch.rand(3, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(chain(x), model(x), atol=1e-5)
        hs = chain.activations(x)
    assert [tuple(h.shape[1:]) for h in hs] == chain.shapes
    assert chain.layers == sorted(chain.layers) and chain.layers[-1] > chain.layers[1]
    assert not any(p.requires_grad for p in chain.parameters())


def test_split_timm_resnet_and_bad_cuts():
    timm = pytest.importorskip("timm")
    model = _classifier(timm.create_model("resnet10t", num_classes=10), 64)
    chain = split(model, ["maxpool", "layer1", "layer2", "fc"])
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(chain(x), model(x), atol=1e-4)
    with pytest.raises(KeyError):
        split(model, ["layer9"])
    with pytest.raises(ValueError):
        split(model, ["layer2", "layer1"])


def test_inverse_shapes_follow_the_forward_blocks():
    model = _classifier(architectures.resnet(channels=(8, 16, 32), blocks=(1, 1, 1)))
    chain = split(model, ["stem", "layer1", "layer2", "layer3"])
    inverse = InverseChain(chain.shapes)
    hs = chain.activations(torch.rand(2, 3, 32, 32))
    for k in range(1, len(chain) + 1):
        assert inverse.inverses[k - 1](hs[k]).shape == hs[k - 1].shape
        assert inverse(hs[k], depth=k).shape == hs[0].shape
    assert inverse.inverses[3].scale == 2 and inverse.inverses[0].scale == 1
    with pytest.raises(ValueError):
        inverse(hs[2], depth=3)
    vit = _classifier(architectures.vit(depth=2, embed_dim=24, num_heads=2))
    vchain = split(vit, ["patch_embed", "pos_embed", "blocks.0", "blocks.1"])
    vinv = InverseChain(vchain.shapes)
    vhs = vchain.activations(torch.rand(2, 3, 32, 32))
    assert vinv(vhs[-1]).shape == (2, 3, 32, 32)


class _Affine1x1(nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.conv.weight.data, self.conv.bias.data = weight.view(3, 3, 1, 1).clone(), bias.clone()

    def forward(self, x):
        return self.conv(x)


def _invertible_pair():
    """A chain of two invertible 1x1 convolutions and the InverseChain of their exact inverses."""
    torch.manual_seed(0)
    from inversion.zeroshot.split import BlockChain

    forwards, inverses = [], []
    for _ in range(2):
        w = torch.eye(3) + 0.3 * torch.randn(3, 3)
        b = 0.1 * torch.randn(3)
        w_inv = torch.linalg.inv(w)
        forwards.append(_Affine1x1(w, b))
        inverses.append(_Affine1x1(w_inv, -w_inv @ b))
    chain = BlockChain(forwards, ["f1", "f2"], (3, 8, 8))
    inverse = InverseChain(chain.shapes)
    inverse.inverses = nn.ModuleList(inverses)
    return chain, inverse


def test_each_loss_is_zero_at_a_perfect_inverse_and_positive_otherwise():
    chain, inverse = _invertible_pair()
    hs = chain.activations(torch.rand(4, 3, 8, 8))
    with torch.no_grad():
        assert block_wise_loss(inverse, hs) < 1e-9
        assert input_space_loss(inverse, hs) < 1e-9
        assert cycle_loss(chain, inverse, hs) < 1e-9
        total, parts = zero_shot_loss(chain, inverse, hs, 2)
        assert total < 1e-9 and set(parts) == {"block", "input", "cycle"}
        inverse.inverses[1].conv.bias.data += 0.5        # break g_2
        assert block_wise_loss(inverse, hs) > 1e-3 and input_space_loss(inverse, hs) > 1e-3
        assert cycle_loss(chain, inverse, hs) > 1e-3
        total2, parts2 = zero_shot_loss(chain, inverse, hs, 2, ZeroShotObjective(1.0, 0.0, 0.0))
        assert abs(parts2["block"] - float(block_wise_loss(inverse, hs))) < 1e-6
        assert abs(float(total2) - parts2["block"]) < 1e-6


def test_no_real_data_reaches_zero_shot_training():
    chain, _ = _invertible_pair()
    real = RealImages(torch.rand(16, 3, 8, 8))
    with pytest.raises(RealDataError):
        assert_synthetic(real)
    with pytest.raises(RealDataError):
        train_inverse(chain, InverseConfig(data="lowpass", block_steps=1, finetune_steps=1), real, progress=False)
    with pytest.raises(RealDataError):
        make_source("real")
    model = _classifier(architectures.resnet(channels=(8, 8, 8), blocks=(1, 1, 1)))
    with pytest.raises(ValueError):   # real images may only go to the upper-bound baseline
        fit_inverse(model, ["stem"], InverseConfig(data="lowpass"), "smoke", real_images=torch.rand(4, 3, 32, 32),
                    cache=False, progress=False)
    for kind in NOISE_KINDS + ("mix",):
        source = make_source(kind, size=16)
        assert_synthetic(source)
        a = source.sample(5, torch.Generator().manual_seed(3))
        b = source.sample(5, torch.Generator().manual_seed(3))
        assert a.shape == (5, 3, 16, 16) and 0 <= a.min() and a.max() <= 1 and torch.equal(a, b)
    assert "deepinversion" in KINDS


def test_progressive_training_lowers_the_cycle_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSION_DATA", str(tmp_path))
    model = _classifier(architectures.resnet(channels=(8, 8, 8), blocks=(1, 1, 1)), 16)
    config = InverseConfig(data="dead_leaves", block_steps=25, joint_steps=25, batch_size=16, lr=3e-3)
    chain = split(model, ["stem", "layer1"])
    x = make_source("dead_leaves", 16).sample(32, torch.Generator().manual_seed(9))
    hs = chain.activations(x)
    untrained = InverseChain(chain.shapes)
    with torch.no_grad():
        before = float(cycle_loss(chain, untrained, hs))
    chain2, inverse, record = fit_inverse(model, ["stem", "layer1"], config, "smoke", progress=False)
    with torch.no_grad():
        after = float(cycle_loss(chain2, inverse, hs))
    assert after < 0.5 * before
    assert record["zero_shot"] and (tmp_path / "checkpoints" / "smoke" / "zeroshot").is_dir()
    # cached: the second call loads the same weights without training
    _, again, record2 = fit_inverse(model, ["stem", "layer1"], config, "smoke", progress=False)
    assert record2["key"] == record["key"]
    assert all(torch.equal(a, b) for a, b in zip(inverse.state_dict().values(), again.state_dict().values()))
    # reconstruction and the optimization baseline run and return images in [0, 1]
    rec, seconds = reconstruct(chain2, inverse, x[:4], 2)
    assert rec.shape == x[:4].shape and seconds > 0
    opt, seconds_opt, snaps = invert_activations_by_optimization(chain2, x[:4], 2, steps=5, record_at=(2,), progress=False)
    assert opt.shape == x[:4].shape and 0 <= opt.min() and opt.max() <= 1 and 2 in snaps


def test_end_to_end_ablation_trains_only_the_pixel_loss():
    chain, _ = _invertible_pair()
    config = InverseConfig(data="uniform", mode="end_to_end", block_steps=3, joint_steps=3, batch_size=4)
    inverse, log = train_inverse(chain, config, make_source("uniform", 8), progress=False)
    assert {entry["phase"] for entry in log} == {"end_to_end"} and "cycle" not in log[0]
    with pytest.raises(ValueError):
        dataclasses.replace(config, mode="bogus")


def test_generator_chain_encoder_and_latent_search():
    torch.manual_seed(0)
    G = Generator(latent_dim=8, width=16).eval()
    chain = generator_chain(G)
    z = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.allclose(chain(z), G(z), atol=1e-6)
    assert chain.shapes[0] == (8,) and chain.shapes[-1] == (3, 32, 32)
    encoder = InverseChain(chain.shapes)
    x = G(z).detach()
    assert encoder(x).shape == (4, 8)
    assert all(encoder.inverses[k - 1](chain.activations(z)[k]).shape == (4, *chain.shapes[k - 1])
               for k in range(1, len(chain) + 1))
    source = LatentPrior(8)
    assert_synthetic(source) is None and source.sample(3, torch.Generator().manual_seed(0)).shape == (3, 8)
    z_hat, seconds, snaps = search_latent(G, x, steps=40, lr=0.1, record_at=(10,), progress=False)
    assert 10 in snaps and seconds > 0
    start = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (G(z_hat) - x).pow(2).mean() < (G(start) - x).pow(2).mean()
    fixed, z_rep = repair(G, encoder, x, project=True)
    assert fixed.shape == x.shape and torch.allclose(z_rep.norm(dim=1), torch.full((4,), 8 ** 0.5), atol=1e-4)
    with pytest.raises(ValueError):
        generator_chain(G, cuts=("fc", "up1"))


def test_frechet_distance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 4, generator=g), torch.randn(400, 4, generator=g)
    assert abs(frechet_distance(a, a)) < 1e-6
    assert frechet_distance(a, b) < 0.2 < frechet_distance(a, b + 1.0)


def test_constant_image_floor():
    from inversion.zeroshot.evaluate import constant_image_floor, quality

    same = torch.rand(1, 3, 16, 16).expand(6, 3, 16, 16).contiguous()
    assert constant_image_floor(same)["psnr"] > 60 and constant_image_floor(same)["ssim"] > 0.99
    images = torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    grey = float(quality(images, torch.full_like(images, 0.25))["psnr"].mean())
    floor = constant_image_floor(images)
    assert set(floor) == {"psnr", "ssim"} and floor["psnr"] > grey


def test_synthesizers_render_through_the_kernel_dispatch_as_the_mask_formula():
    """dead_leaves and shapes render via inversion.kernels; their discs equal the plain mask formula."""
    from inversion.zeroshot import synthetic

    g = torch.Generator().manual_seed(3)
    x = synthetic.dead_leaves(4, 24, g)
    assert x.shape == (4, 3, 24, 24) and 0 <= x.min() and x.max() <= 1
    # the same draws, painted with full (N, K, H, W) masks, then the same blur
    g = torch.Generator().manual_seed(3)
    n, size, discs = 4, 24, 40
    rmin, rmax = size / 16, size / 2
    u = torch.rand(n, discs, generator=g)
    radius = (rmin ** -2 + u * (rmax ** -2 - rmin ** -2)) ** -0.5
    centre = torch.rand(n, discs, 2, generator=g) * size
    base = torch.rand(n, discs, 3, generator=g)
    direction = torch.randn(n, discs, 2, generator=g)
    background = (synthetic._random_colour(n, g, "cpu") + 0.15 * synthetic._one_over_f(n, size, g, "cpu")).clamp(0, 1)
    axis = torch.linspace(-0.5, 0.5, size)
    pix = torch.arange(size) + 0.5
    inside = ((pix.view(1, 1, 1, -1) - centre[..., 0, None, None]) ** 2
              + (pix.view(1, 1, -1, 1) - centre[..., 1, None, None]) ** 2) <= radius[..., None, None] ** 2
    ramp = 0.3 * (direction[..., 0, None, None] * axis.view(1, 1, -1, 1) + direction[..., 1, None, None] * axis.view(1, 1, 1, -1))
    colour = (base[..., None, None] + ramp[:, :, None]).clamp(0, 1)                   # (n, K, 3, H, W)
    image = background.clone()
    for k in range(discs):
        image = torch.where(inside[:, k, None], colour[:, k], image)
    expected = synthetic._blur(image, torch.full((n,), 0.5)).clamp(0, 1)
    assert torch.allclose(x, expected, atol=1e-5)


def test_inverse_norm_puts_batch_or_group_norm_in_the_residual_blocks_and_keeps_shapes():
    shapes = [(3, 32, 32), (16, 32, 32), (32, 16, 16)]
    plain, batch, group = (InverseChain(shapes, norm=n) for n in ("none", "batch", "group"))
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in plain.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in batch.modules()) == 4   # 2 per residual block
    assert sum(isinstance(m, torch.nn.GroupNorm) and m.num_groups == 8 for m in group.modules()) == 4
    assert set(plain.state_dict()) < set(batch.state_dict())   # "none" keeps the earlier parameter names
    h = torch.randn(2, *shapes[-1])
    assert batch.eval()(h).shape == group.eval()(h).shape == (2, *shapes[0])
    with pytest.raises(ValueError, match="norm"):
        InverseChain(shapes, norm="layer")
    with pytest.raises(ValueError, match="inverse_norm"):
        InverseConfig(inverse_norm="layer")


def _tiny_chain_and_images():
    torch.manual_seed(0)
    model = Classifier(architectures.resnet(channels=(8, 8, 16), blocks=(1, 1, 1)),
                       InputConfig(input_size=(3, 16, 16)), "tiny").eval()
    chain = split(model, ["stem", "layer1", "layer2"])
    return chain, make_source("shapes", 16).sample(64, make_generator(7))


def test_batch_statistics_break_the_end_to_end_chain_and_group_norm_does_not():
    """Why the study's inverses use GroupNorm: trained end to end, every g_j of a chain is called on
    activations from every depth (true h_j, and g_{j+1}(...) from deeper cuts), so BatchNorm's running
    statistics average distributions that differ, and the chain in eval mode reconstructs worse than
    with each call's own batch statistics. GroupNorm has no running statistics: eval = train."""
    torch.set_num_threads(1)
    chain, x = _tiny_chain_and_images()
    scores = {}
    for norm in ("batch", "group"):
        config = InverseConfig(data="shapes", mode="end_to_end", block_steps=0, joint_steps=150, batch_size=16,
                               lr=3e-3, inverse_norm=norm)
        inverse, _ = train_inverse(chain, config, make_source("shapes", 16), progress=False)
        with torch.no_grad():
            evaluated = float(psnr(inverse.eval()(chain(x, 3), depth=3).clamp(0, 1), x).mean())
            batch_stats = float(psnr(inverse.train()(chain(x, 3), depth=3).clamp(0, 1), x).mean())
        scores[norm] = (evaluated, batch_stats)
    assert scores["batch"][0] < scores["batch"][1] - 0.5, scores
    assert scores["group"][0] == scores["group"][1], scores


def test_bf16_inverse_training_is_deterministic_and_close_to_fp32():
    torch.set_num_threads(1)
    chain, x = _tiny_chain_and_images()
    runs = {}
    for name, precision in (("fp32", "fp32"), ("bf16", "bf16"), ("bf16 again", "bf16")):
        config = InverseConfig(data="shapes", block_steps=5, joint_steps=40, batch_size=16, lr=3e-3,
                               inverse_norm="group", precision=precision)
        inverse, log = train_inverse(chain, config, make_source("shapes", 16), progress=False)
        runs[name] = (inverse.state_dict(), log[-1]["loss"])
    assert all(torch.equal(a, runs["bf16 again"][0][k]) for k, a in runs["bf16"][0].items())
    assert runs["bf16"][1] == pytest.approx(runs["fp32"][1], rel=0.2)
    assert InverseConfig().precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        InverseConfig(precision="fp16")


def test_channels_last_inverse_training_is_deterministic_matches_the_contiguous_one_and_restores_layouts():
    torch.set_num_threads(1)
    chain, x = _tiny_chain_and_images()
    runs = {}
    for name, channels_last in (("contiguous", False), ("channels_last", True), ("again", True)):
        config = InverseConfig(data="shapes", block_steps=5, joint_steps=20, batch_size=16, lr=3e-3,
                               inverse_norm="group", channels_last=channels_last)
        inverse, log = train_inverse(chain, config, make_source("shapes", 16), progress=False)
        runs[name] = (inverse, log[-1]["loss"])
    nhwc, again, plain = (runs[k][0] for k in ("channels_last", "again", "contiguous"))
    assert all(torch.equal(a, again.state_dict()[k]) for k, a in nhwc.state_dict().items())
    weights = [p for p in list(chain.parameters()) + list(nhwc.parameters()) if p.dim() == 4]
    assert weights and all(p.is_contiguous() for p in weights)   # the frozen chain and the inverse leave NCHW
    assert runs["channels_last"][1] == pytest.approx(runs["contiguous"][1], rel=1e-3)
    with torch.no_grad():
        a, b = (inverse(chain(x, 3), depth=3) for inverse in (plain, nhwc))
    assert (a - b).abs().max() < 1e-2   # float rounding, grown over 25 Adam steps
    keys = {config_key(chain, ["a"], InverseConfig(channels_last=v)) for v in (False, True)}
    assert len(keys) == 2 and config_key(chain, ["a"], InverseConfig()) in keys
