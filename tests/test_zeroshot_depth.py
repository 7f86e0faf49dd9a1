"""Zero-shot inversion at the paper profile's depths: ImageNet ResNet-50 cut after layer1-3 and
timm RepVGG-A2 cut after its stages (notebook 05, paper profile). Random weights (no hub, no
ImageNet): the split's shapes and layer counts at 224 px, the inverse's shapes and size at the
paper's width, and one training step at a smaller size staying finite."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from inversion.models import get_spec
from inversion.models.architectures import Classifier, InputConfig
from inversion.zeroshot import InverseChain, InverseConfig, make_source, split, train_inverse

pytest.importorskip("timm")

RESNET_CUTS = ["layer1", "layer2", "layer3"]
REPVGG_CUTS = ["stages.0", "stages.1", "stages.2"]
RESNET_SHAPES = [(3, 224, 224), (256, 56, 56), (512, 28, 28), (1024, 14, 14)]
REPVGG_SHAPES = [(3, 224, 224), (96, 56, 56), (192, 28, 28), (384, 14, 14)]


def _model(name: str, size: int | None = None) -> Classifier:
    """A registered timm model with seeded random weights (``pretrained=False``) and non-trivial
    BatchNorm statistics, at its own input size or at ``size``."""
    spec = get_spec(name)
    torch.manual_seed(0)
    config = spec.config if size is None else InputConfig(input_size=(3, size, size), mean=spec.config.mean,
                                                          std=spec.config.std, num_classes=1000)
    model = Classifier(spec.build(), config, name).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def resnet50():
    return _model("imagenet-resnet50")


@pytest.fixture(scope="module")
def repvgg():
    return _model("imagenet-repvgg-a2")


def test_resnet50_split_at_224(resnet50):
    chain = split(resnet50, RESNET_CUTS)
    assert chain.shapes == RESNET_SHAPES
    assert chain.layers == [0, 10, 22, 40]          # conv1 + 3 / 4 / 6 bottlenecks of 3 convs each
    net, x = resnet50.net, torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        h = net.maxpool(net.act1(net.bn1(net.conv1((x - resnet50.mean) / resnet50.std))))
        reference = net.layer3(net.layer2(net.layer1(h)))
        assert torch.allclose(chain(x), reference, atol=1e-4)


def test_repvgg_split_at_224_and_composes_to_the_model(repvgg):
    chain = split(repvgg, REPVGG_CUTS)
    assert chain.shapes == REPVGG_SHAPES
    assert chain.layers == [0, 3, 7, 21]             # stem + 2 / 4 / 14 blocks, each one 3x3 conv once fused
    full = split(repvgg, ["stem", "stages.0", "stages.1", "stages.2", "stages.3", "final_conv", "head"])
    assert full.layers[-1] == 23                     # RepVGG-A: 22 conv layers + the classifier
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(full(x), repvgg(x), atol=1e-4)
        assert torch.allclose(full(x, depth=4), chain(x), atol=1e-5)


@pytest.mark.parametrize("name, cuts, shapes", [
    ("imagenet-resnet50", RESNET_CUTS, [(3, 64, 64), (256, 16, 16), (512, 8, 8), (1024, 4, 4)]),
    ("imagenet-repvgg-a2", REPVGG_CUTS, [(3, 64, 64), (96, 16, 16), (192, 8, 8), (384, 4, 4)]),
])
def test_split_at_a_smaller_size(name, cuts, shapes):
    assert split(_model(name, 64), cuts).shapes == shapes


@pytest.mark.parametrize("shapes", [RESNET_SHAPES, REPVGG_SHAPES])
def test_block_inverses_map_features_back_to_the_image(shapes):
    torch.manual_seed(0)
    inverse = InverseChain(shapes, width_mult=0.125, norm="batch").eval()   # narrow: shapes only, CPU seconds
    for k in range(1, len(shapes)):
        h = torch.randn(1, *shapes[k])
        assert inverse.inverses[k - 1](h).shape == (1, *shapes[k - 1])
        assert inverse(h, depth=k).shape == (1, 3, 224, 224)


def test_inverse_size_at_the_paper_width():
    """Parameters of the paper profile's inverses (width_mult 2): the memory estimate in notebook 05's
    yaml rests on these; built on the meta device, so nothing is allocated."""
    with torch.device("meta"):
        resnet = InverseChain(RESNET_SHAPES, width_mult=2.0, norm="batch")
        repvgg = InverseChain(REPVGG_SHAPES, width_mult=2.0, norm="batch")
    counts = [[sum(p.numel() for p in g.parameters()) for g in chain.inverses] for chain in (resnet, repvgg)]
    assert [round(c / 1e6, 1) for c in counts[0]] == [7.4, 29.5, 118.0]
    assert [round(c / 1e6, 1) for c in counts[1]] == [1.0, 4.2, 16.6]
    assert resnet.inverses[0].scale == 4 and resnet.inverses[1].scale == resnet.inverses[2].scale == 2


@pytest.mark.parametrize("name, cuts", [("imagenet-resnet50", RESNET_CUTS), ("imagenet-repvgg-a2", REPVGG_CUTS)])
def test_one_training_step_stays_finite(name, cuts):
    """The progressive schedule's phases (one warm-up step per block, one joint step with the cycle
    through the frozen network) at 64 px: every loss is finite and every weight moved stays finite."""
    model = _model(name, 64)
    chain = split(model, cuts)
    config = InverseConfig(data="mix", block_steps=1, joint_steps=1, batch_size=2, width_mult=0.25,
                           inverse_norm="batch", seed=0)
    torch.manual_seed(config.seed)
    untrained = InverseChain(chain.shapes, config.width_mult, config.inverse_depth, config.inverse_norm)
    inverse, log = train_inverse(chain, config, make_source("mix", 64), progress=False)
    assert [r["phase"] for r in log] == ["block1", "block2", "block3", "joint1..3"]
    assert all(torch.isfinite(torch.tensor(v)) for r in log for k, v in r.items() if k not in ("phase", "step"))
    assert all(torch.isfinite(p).all() for p in inverse.parameters())
    moved = [not torch.equal(a, b) for a, b in zip(untrained.parameters(), inverse.parameters())]
    assert sum(moved) > len(moved) // 2
    with torch.no_grad():
        x_hat = inverse(chain(torch.rand(2, 3, 64, 64)), depth=3)
    assert x_hat.shape == (2, 3, 64, 64) and torch.isfinite(x_hat).all()
