"""Feedforward inversion (inversion.feedforward): conditional BN, projection D, frozen classifier,
resume from checkpoint, factor probe. Tiny models, CPU, fixed seeds."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from inversion.data import fashion_scenes
from inversion.feedforward.baselines import DecoderConfig, PixelDecoder, invert_logits_by_optimization, train_decoder
from inversion.feedforward.blocks import ConditionalBatchNorm2d
from inversion.feedforward.discriminator import DiscriminatorConfig, ProjectionDiscriminator
from inversion.feedforward.generator import GeneratorConfig, LogitConditionedGenerator
from inversion.feedforward.losses import hinge_d_loss, hinge_g_loss
from inversion.feedforward.probe import (ProbeConfig, chance_errors, factor_errors, same_class_partner,
                                         train_probe)
from inversion.feedforward.train import FeedforwardConfig, assert_frozen, train_logit_inverse
from inversion.models import Classifier
from inversion.models.zoo import SCENES

TINY_G = GeneratorConfig(logit_dim=10, z_dim=8, widths=(16, 8, 8), bottom=8, embed_dim=8)
TINY_D = DiscriminatorConfig(logit_dim=10, widths=(8, 16), downsample=(True, True))


def tiny_classifier(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                        nn.Flatten(), nn.Linear(32, 10))
    model = Classifier(net, SCENES, "tiny").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def scenes():
    return fashion_scenes.load("test", n=1200)


def test_conditional_batchnorm_depends_on_logits_and_is_deterministic():
    torch.manual_seed(0)
    g = LogitConditionedGenerator(TINY_G).eval()
    with torch.no_grad():  # make BN running stats non-trivial, then compare in eval mode
        g.train()(torch.randn(16, 10), torch.randn(16, 8))
        g.eval()
    z = torch.randn(4, 8)
    y1, y2 = torch.randn(4, 10), torch.randn(4, 10)
    with torch.no_grad():
        a, b, a2 = g(y1, z), g(y2, z), g(y1.clone(), z.clone())
    assert a.shape == (4, 3, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, a2), "same logits and noise must give the same image"
    assert (a - b).abs().amax(dim=(1, 2, 3)).min() > 1e-4, "different logits must give different images"


def test_conditional_batchnorm_gain_and_bias_come_from_the_condition():
    cbn = ConditionalBatchNorm2d(4, cond_dim=3, sn=False).eval()
    nn.init.ones_(cbn.gain.weight), nn.init.ones_(cbn.bias.weight)
    x = torch.randn(2, 4, 5, 5)
    out0 = cbn(x, torch.zeros(2, 3))
    out1 = cbn(x, torch.ones(2, 3))  # gain 1 + 3 = 4, bias 3
    assert torch.allclose(out1, 4 * out0 + 3, atol=1e-5)
    with pytest.raises(ValueError):
        cbn(x, torch.zeros(2, 2))


def test_unconditional_generator_and_discriminator():
    g = LogitConditionedGenerator(GeneratorConfig(logit_dim=0, z_dim=8, widths=(16, 8, 8), bottom=8)).eval()
    d = ProjectionDiscriminator(DiscriminatorConfig(logit_dim=None, widths=(8, 16), downsample=(True, True)))
    x = g(None, torch.randn(3, 8))
    assert x.shape == (3, 3, 32, 32)
    assert d(x).shape == (3,) and d.embed is None


def test_projection_discriminator_shape_and_use_of_logits():
    torch.manual_seed(0)
    d = ProjectionDiscriminator(TINY_D).eval()
    x = torch.rand(5, 3, 32, 32)
    y = torch.randn(5, 10)
    s = d(x, y)
    assert s.shape == (5,)
    # the projection term is exactly <V y, phi(x)>: the score minus the unconditional part
    with torch.no_grad():
        phi = d.features(x)
        uncond = d.linear(phi).squeeze(1)
        proj = (d.embed((y - d.logit_mean) / d.logit_std) * phi).sum(1)
    assert torch.allclose(s, uncond + proj, atol=1e-5)
    assert not torch.allclose(d(x, y), d(x, -y)), "the score must depend on the logits"
    with pytest.raises(ValueError):
        d(x)


def test_hinge_losses():
    assert hinge_d_loss(torch.tensor([2.0]), torch.tensor([-2.0])).item() == 0.0
    assert hinge_d_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == 2.0
    assert hinge_g_loss(torch.tensor([1.0, 3.0])).item() == -2.0


def test_classifier_stays_frozen(scenes):
    clf = tiny_classifier()
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    cfg = FeedforwardConfig(generator=TINY_G, discriminator=TINY_D, steps=3, batch_size=8, n_train=64,
                            logit_weight=1.0, pixel_weight=1.0)
    train_logit_inverse(clf, scenes.images, cfg)
    assert all(torch.equal(before[k], v) for k, v in clf.state_dict().items())
    assert not clf.training
    trainable = tiny_classifier()
    next(trainable.parameters()).requires_grad_(True)
    with pytest.raises(AssertionError):
        train_logit_inverse(trainable, scenes.images, cfg)
    with pytest.raises(AssertionError):
        assert_frozen(tiny_classifier().train())


def test_resume_from_checkpoint_gives_the_same_state(scenes, tmp_path):
    clf = tiny_classifier()
    cfg = FeedforwardConfig(generator=TINY_G, discriminator=TINY_D, steps=6, batch_size=8, n_train=64,
                            checkpoint_every=2)
    straight = train_logit_inverse(clf, scenes.images, cfg, checkpoint=tmp_path / "a.pt")
    interrupted = train_logit_inverse(clf, scenes.images, cfg, checkpoint=tmp_path / "b.pt", stop_after=4)
    assert interrupted.log["steps_done"] == 4
    resumed = train_logit_inverse(clf, scenes.images, cfg, checkpoint=tmp_path / "b.pt")
    assert resumed.log["steps_done"] == 6
    for a, b in [(straight.generator, resumed.generator), (straight.discriminator, resumed.discriminator)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert straight.log["d_loss"] == resumed.log["d_loss"]
    # a complete checkpoint is loaded, not retrained
    again = train_logit_inverse(clf, scenes.images, cfg, checkpoint=tmp_path / "a.pt")
    assert again.log["d_loss"] == straight.log["d_loss"]
    with pytest.raises(ValueError):
        train_logit_inverse(clf, scenes.images, FeedforwardConfig(generator=TINY_G, discriminator=TINY_D, steps=7),
                      checkpoint=tmp_path / "a.pt")


def test_discriminator_takes_n_dis_steps_per_generator_step(scenes, tmp_path):
    cfg = FeedforwardConfig(generator=TINY_G, discriminator=TINY_D, steps=3, batch_size=8, n_train=64,
                            lr_g=4e-4, lr_d=8e-4, n_dis=2)
    train_logit_inverse(tiny_classifier(), scenes.images, cfg, checkpoint=tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=False)
    assert {int(s["step"]) for s in state["opt_g"]["state"].values()} == {3}
    assert {int(s["step"]) for s in state["opt_d"]["state"].values()} == {6}
    assert state["opt_d"]["param_groups"][0]["lr"] == 8e-4 and state["opt_g"]["param_groups"][0]["lr"] == 4e-4


def test_pixel_decoder_and_optimization_baseline():
    clf = tiny_classifier()
    images = fashion_scenes.load("test", n=1200).images
    dec, log = train_decoder(clf, images, DecoderConfig(steps=30, batch_size=16, n_train=200))
    assert dec(torch.randn(2, 10)).shape == (2, 3, 32, 32)
    assert sum(log["loss"][-5:]) < sum(log["loss"][:5])
    assert PixelDecoder(DecoderConfig(image_size=64))(torch.randn(1, 10)).shape == (1, 3, 64, 64)
    target = clf(images[:4].float() / 255)
    start_err = ((clf(torch.full((4, 3, 32, 32), 0.5)) - target) ** 2).sum()
    x, sec = invert_logits_by_optimization(clf, target, steps=40, lr=0.1)
    assert x.shape == (4, 3, 32, 32) and sec > 0
    assert ((clf(x) - target) ** 2).sum() < 0.5 * start_err


def test_chance_partner_is_another_image_of_the_same_class(scenes):
    partner = same_class_partner(scenes.labels, seed=0)
    assert torch.equal(scenes.labels[partner], scenes.labels)
    assert (partner != torch.arange(len(partner))).all()
    err = chance_errors(scenes)
    assert err["background"].mean() > 0.3  # two random RGB colours are far apart on average


def test_factor_probe_reads_factors_of_real_images(scenes):
    train = fashion_scenes.load("train", n=4000)
    probe, _ = train_probe(train, ProbeConfig(width=8, depth=2, steps=100, batch_size=64))
    held_out = scenes.subset(slice(0, 500))
    errors = {k: v.mean().item() for k, v in factor_errors(probe.read(held_out.images), held_out.factors()).items()}
    chance = {k: v.mean().item() for k, v in chance_errors(held_out).items()}
    # the probe reads every factor of unseen real images far better than chance (centre: ~1 px)
    assert errors["background"] < 0.1 * chance["background"], (errors, chance)
    assert errors["foreground"] < 0.3 * chance["foreground"], (errors, chance)
    assert errors["center"] < 0.3 * chance["center"] and errors["center"] < 1.2, (errors, chance)
    assert errors["scale"] < 0.35 * chance["scale"], (errors, chance)
    with pytest.raises(ValueError):
        probe.read(torch.rand(2, 3, 16, 16))


def test_image_manipulations_carry_their_ground_truth(scenes):
    from inversion.feedforward.invariance import manipulate_images

    sub = scenes.subset(slice(0, 50))

    def garment_centre_x(s):  # centre of the columns that differ from the background colour
        diff = (s.float_images() - s.background[:, :, None, None]).norm(dim=1) > 0.1
        cols = diff.any(1).float()
        idx = torch.arange(cols.shape[1]).float() + 0.5
        first = torch.where(cols > 0, idx, torch.full_like(idx, 1e9)).amin(1)
        last = torch.where(cols > 0, idx, torch.full_like(idx, -1e9)).amax(1)
        return (first + last) / 2

    for kind in ("flip", "shift"):
        moved = manipulate_images(sub, kind, shift=4)
        measured = garment_centre_x(moved) - garment_centre_x(sub)
        expected = moved.center[:, 0] - sub.center[:, 0]
        assert (measured - expected).abs().median() < 1.0, kind
    recoloured = manipulate_images(sub, "recolour")
    assert torch.allclose(recoloured.float_images()[:, 0], sub.float_images()[:, 1])
    assert torch.allclose(recoloured.background[:, 0], sub.background[:, 1])
    with pytest.raises(ValueError):
        manipulate_images(sub, "rotate")


def test_noise_resampling_and_logit_manipulations():
    from inversion.feedforward.invariance import add_constant, interpolate, pixel_variance, raise_class, resample
    from inversion.feedforward.train import TrainedInverse

    torch.manual_seed(0)
    g = LogitConditionedGenerator(TINY_G).eval()
    inverse = TrainedInverse(g, FeedforwardConfig(generator=TINY_G, discriminator=TINY_D))
    y = torch.randn(3, 10)
    s = resample(inverse, y, n_noise=4, seed=1)
    assert s.shape == (3, 4, 3, 32, 32)
    assert torch.equal(s, resample(inverse, y, n_noise=4, seed=1)), "seeded noise"
    assert pixel_variance(s).shape == (3, 32, 32) and pixel_variance(s).mean() > 0
    assert torch.equal(add_constant(y, 2.0).softmax(1).argmax(1), y.argmax(1))
    assert torch.allclose(interpolate(y[0], y[1], 0.0), y[0]) and torch.allclose(interpolate(y[0], y[1], 1.0), y[1])
    raised, target = raise_class(y, amount=100.0)
    assert torch.equal(raised.argmax(1), target) and not torch.equal(target, y.argmax(1))


def test_factor_readout_finds_what_the_logits_carry(scenes):
    from inversion.feedforward.evaluate import factor_readout

    train, test = scenes.subset(slice(0, 800)), scenes.subset(slice(800, 1200))
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(3, 10, generator=gen)
    carry_bg = lambda s: s.background @ mix + 0.01 * torch.randn(len(s), 10, generator=gen)  # noqa: E731
    informed = factor_readout(carry_bg(train), train, carry_bg(test), test)
    blind = factor_readout(torch.randn(len(train), 10, generator=gen), train, torch.randn(len(test), 10, generator=gen), test)
    assert informed.loc["background", "r2"] > 0.95 and informed.loc["background", "error_vs_chance"] < 0.1
    assert blind.loc["background", "r2"] < 0.1 and blind.loc["center", "r2"] < 0.1


@pytest.mark.parametrize("profile", ["smoke", "mini", "paper"])
def test_notebooks_02_to_04_share_their_generators(profile):
    from inversion import reproduce

    p2, p3, p4 = (reproduce.parameters(n, profile) for n in
                  ("02_feedforward_inversion", "03_robust_vs_standard", "04_invariance_analysis"))
    # gan, probe, image_size and 03/04's cifar_* recipe have one home, notebooks/profiles/feedforward.yaml
    shared = reproduce.shared_recipe("feedforward", profile)
    assert p2["gan"] == p3["gan"] == p4["gan"] == shared["gan"]
    for key in ("cifar_gan", "cifar_n_train", "cifar_judge", "seeds", "natural_dataset", "image_size"):
        assert p3[key] == p4[key] == shared[key], key
    assert p4["cifar_objectives"]["standard"] == p4["cifar_classifier"] == p3["cifar_standard"]
    assert len(p3["seeds"]) >= 2, "the seed rule needs at least two generator seeds"
    assert p2["decoder"] == p3["decoder"]
    if p2["dataset"] == "fashion-scenes":
        assert p2["dataset_gan"] == {} and p2["image_size"] == 32 and p2["n_train"] == p3["n_train"] == p4["n_train"]
    else:   # 02 on the natural images: its first classifier's generator is 03's first-seed standard one
        assert p2["dataset"] == p3["natural_dataset"] and p2["image_size"] == p3["image_size"]
        assert p2["dataset_gan"] == p3["cifar_gan"] and p2["n_train"] == p3["cifar_n_train"]
        assert p2["classifiers"][0] == p3["cifar_standard"] and p2["gan"]["seed"] == p3["seeds"][0]


def test_factor_free_study_refuses_a_probe_and_unknown_data():
    from inversion.feedforward.experiment import Study, load_split

    with pytest.raises(ValueError, match="no ground-truth factors"):
        Study.setup("smoke", 8, 8, {"width": 8}, dataset="cifar10")
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_split("imagenet-typo", "train", 8)
