"""The zero-shot recipe of notebook 05: the progressive schedule against the earlier stage-wise one,
the plain decoder baseline, structured synthesized data, the no-real-data guarantee, and device
placement (the model on PyTorch's ``meta`` device stands in for a GPU). Tiny networks, CPU, seconds."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from inversion.metrics import psnr
from inversion.models import architectures
from inversion.models.architectures import Classifier, InputConfig
from inversion.zeroshot import InverseConfig, RealDataError, fit_inverse, make_source, split, train_inverse
from inversion.zeroshot.gan import Generator, LatentPrior, generator_chain
from inversion.zeroshot.inverse import ConvInverse, DecoderBank, InverseChain, PlainDecoder
from inversion.zeroshot.synthetic import (GENERATORS, MIX_KINDS, NOISE_KINDS, NoiseSource, RealImages,
                                          dead_leaves, make_generator)
from inversion.zeroshot.train import build_inverse


def _tiny_resnet(size: int = 16) -> Classifier:
    torch.manual_seed(0)
    model = Classifier(architectures.resnet(channels=(8, 8, 16), blocks=(1, 1, 1)),
                       InputConfig(input_size=(3, size, size)), "tiny").eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
    return model


def _psnr_on(chain, inverse, x, depth):
    with torch.no_grad():
        return float(psnr(inverse(chain(x, depth), depth=depth).clamp(0, 1), x).mean())


def test_progressive_schedule_beats_the_stagewise_one_at_equal_steps():
    """Equal steps (3 x 40), same data and architecture: joint training of the chain under one schedule
    after short block-wise warm-ups reconstructs held-out images from the deepest cut better than the
    earlier schedule (per stage: g_k alone, then g_1..g_k fine-tuned, each phase restarting Adam)."""
    torch.set_num_threads(1)
    model = _tiny_resnet()
    cuts = ["stem", "layer1", "layer2"]
    chain = split(model, cuts)
    source = make_source("mix", 16)
    old = InverseConfig(data="mix", mode="stagewise", block_steps=20, finetune_steps=20, batch_size=16, lr=3e-3)
    new = InverseConfig(data="mix", mode="progressive", block_steps=10, joint_steps=90, batch_size=16, lr=3e-3)
    assert old.total_steps(3) == new.total_steps(3) == 120
    x = make_source("shapes", 16).sample(64, make_generator(123))
    scores = {}
    for name, config in (("old", old), ("new", new)):
        inverse, log = train_inverse(chain, config, source, progress=False)
        scores[name] = _psnr_on(chain, inverse, x, 3)
        if name == "new":
            assert log[-1]["phase"] == "joint1..3" and sum(e["phase"] == "joint1..3" for e in log) >= 9
    assert scores["new"] > scores["old"] + 1.0, scores


def test_plain_decoder_is_a_first_class_method():
    model = _tiny_resnet()
    chain = split(model, ["stem", "layer1", "layer2"])
    bank = DecoderBank(chain.shapes, width=16)
    assert len(bank) == 3
    hs = chain.activations(torch.rand(2, 3, 16, 16))
    for k in range(1, 4):
        assert bank(hs[k], depth=k).shape == (2, 3, 16, 16)
    assert any(isinstance(m, nn.BatchNorm2d) for m in bank.modules())
    with pytest.raises(ValueError):
        bank(hs[1], depth=3)
    with pytest.raises(ValueError):
        PlainDecoder((8, 6, 6), (3, 16, 16))
    config = InverseConfig(data="shapes", mode="plain_decoder", block_steps=0, joint_steps=60, batch_size=16,
                           lr=3e-3, decoder_width=16)
    assert isinstance(build_inverse(chain.shapes, config), DecoderBank)
    x = make_source("shapes", 16).sample(32, make_generator(5))
    untrained = _psnr_on(chain, bank, x, 3)
    trained, log = train_inverse(chain, config, make_source("shapes", 16), progress=False)
    assert {e["phase"] for e in log} == {"decoder1", "decoder2", "decoder3"}
    assert all(set(e) == {"phase", "step", "loss", "input"} for e in log)   # pixel loss only
    assert _psnr_on(chain, trained, x, 3) > untrained + 3
    assert _psnr_on(chain, trained, x, 1) > _psnr_on(chain, trained, x, 3)   # shallower is easier


def test_identity_skip_where_shapes_match():
    same = ConvInverse((8, 16, 16), (8, 16, 16))
    assert same.identity_skip
    h = torch.randn(2, 8, 16, 16)
    assert torch.equal(same(h), h)                      # an untrained g is the identity
    other = ConvInverse((8, 16, 16), (16, 8, 8))
    assert not other.identity_skip and other(torch.randn(2, 16, 8, 8)).shape == (2, 8, 16, 16)
    chain = split(_tiny_resnet(), ["stem", "layer1"])   # layer1 keeps (8, 16, 16)
    inverse = InverseChain(chain.shapes)
    assert chain.shapes[1] == chain.shapes[2] and inverse.inverses[1].identity_skip


def test_structured_synthetic_data():
    g = make_generator(0)
    for kind in NOISE_KINDS + ("mix",):
        x = NoiseSource(kind, 24).sample(6, g)
        assert x.shape == (6, 3, 24, 24) and 0 <= x.min() and x.max() <= 1, kind
    assert set(MIX_KINDS) <= set(GENERATORS) and "uniform" not in MIX_KINDS and "gaussian" not in MIX_KINDS
    # dead leaves: regions of several pixels, not speckle - neighbouring pixels mostly agree
    leaves = dead_leaves(16, 32, make_generator(1))
    white = GENERATORS["uniform"](16, 32, make_generator(1))

    def neighbour_change(x):
        return float((x[..., 1:] - x[..., :-1]).abs().mean())
    assert neighbour_change(leaves) < 0.25 * neighbour_change(white)
    # same seed, same images; another seed, other images
    a, b = (NoiseSource("mix", 16).sample(8, make_generator(3)) for _ in range(2))
    assert torch.equal(a, b) and not torch.equal(a, NoiseSource("mix", 16).sample(8, make_generator(4)))


def test_no_real_data_in_any_zero_shot_mode():
    chain = split(_tiny_resnet(), ["stem", "layer1"])
    real = RealImages(torch.rand(16, 3, 16, 16))
    for mode in ("progressive", "stagewise", "end_to_end", "plain_decoder"):
        with pytest.raises(RealDataError):
            train_inverse(chain, InverseConfig(data="mix", mode=mode, block_steps=1, joint_steps=1,
                                               finetune_steps=1), real, progress=False)
    with pytest.raises(ValueError):   # the real-data bound needs a RealImages source
        train_inverse(chain, InverseConfig(data="real", mode="end_to_end", block_steps=1, joint_steps=1),
                      make_source("mix", 16), progress=False)


def test_every_tensor_is_made_on_the_models_device():
    """The model on the ``meta`` device (no data, shapes only) stands in for a GPU: any tensor created
    on the CPU inside splitting, synthesis or training meets a meta tensor and raises."""
    model = _tiny_resnet().to("meta")
    chain = split(model, ["stem", "layer1", "layer2"])           # the shape probe runs on meta
    assert chain.device.type == "meta" and chain.shapes[-1] == (8, 8, 8)
    for kind in NOISE_KINDS + ("mix",):
        assert NoiseSource(kind, 16, "meta").sample(4, make_generator(0, "meta")).device.type == "meta"
    for mode in ("progressive", "stagewise", "end_to_end", "plain_decoder"):
        config = InverseConfig(data="mix", mode=mode, block_steps=1, joint_steps=1, finetune_steps=1,
                               batch_size=4, decoder_width=8)
        _, inverse, record = fit_inverse(model, ["stem", "layer1", "layer2"], config, "smoke", device="meta",
                                         cache=False, progress=False)
        assert next(inverse.parameters()).device.type == "meta" and record["zero_shot"]
    G = Generator(latent_dim=8, width=16).eval().to("meta")
    gchain = generator_chain(G)
    assert gchain.shapes[-1] == (3, 32, 32)
    assert LatentPrior(8, "meta").sample(3, make_generator(0, "meta")).device.type == "meta"
    config = InverseConfig(data="latent_prior", block_steps=1, joint_steps=1, batch_size=4)
    _, encoder, _ = fit_inverse(G, ["fc", "up1", "up2", "to_rgb"], config, "smoke", device="meta", cache=False,
                                progress=False)
    assert encoder(G(torch.randn(2, 8, device="meta")), depth=4).shape == (2, 8)
