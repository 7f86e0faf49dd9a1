"""Feedforward inversion (paper B) on ImageNet-style data: the factor-free Study on a tiny fake
image folder, 1000-logit generators and discriminators at 128 px, resized classifier input, and the
cache keys of the ten-class 32 px recipes (which must not move)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from inversion.models import zoo
from inversion.models.architectures import Classifier, InputConfig, ResizedInput, fed_at, resnet, vgg

MODEL, JUDGE = "test-imagenet-tiny", "test-imagenet-judge"
CLASSES = 4   # class folders of the fake ImageNet (the models still give 1000 logits)


@pytest.fixture
def fake_imagenet(tmp_path, monkeypatch):
    """A tiny ImageNet-style folder (train: 6 images per class, val: 3; 80x64 px, not square) and
    two tiny random-weight 1000-class models registered as timm models with local checkpoints."""
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 6), ("val", 3)):
        for c in range(CLASSES):
            folder = tmp_path / "imagenet" / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                coarse = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
                Image.fromarray(coarse).resize((80, 64), Image.BILINEAR).save(folder / f"{i}.JPEG", quality=90)
    monkeypatch.setenv("IMAGENET_DIR", str(tmp_path / "imagenet"))
    monkeypatch.setenv("INVERSION_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("INVERSION_TIMM_DIR", str(tmp_path / "timm"))
    specs = {MODEL: (lambda: resnet(channels=(4, 8), blocks=(1, 1), num_classes=1000), 48, "bicubic"),
             JUDGE: (lambda: vgg(channels=(4, 8), num_classes=1000), 40, "bilinear")}
    (tmp_path / "timm").mkdir()
    for name, (build, side, interpolation) in specs.items():
        config = InputConfig(input_size=(3, side, side), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                             num_classes=1000, interpolation=interpolation)
        monkeypatch.setitem(zoo.REGISTRY, name, zoo.ModelSpec(name, "cnn", "timm", build, config=config,
                                                               dataset="imagenet", timm_name=name))
        torch.manual_seed(1)
        save_file({k: v.contiguous() for k, v in build().state_dict().items()}, str(tmp_path / "timm" / f"{name}.safetensors"))
    return tmp_path


TINY_GAN = {"steps": 2, "batch_size": 4, "z_dim": 16, "embed_dim": 8, "g_widths": [16, 8, 8, 4],
            "d_widths": [4, 8, 8], "checkpoint_every": 2, "seed": 0}


def test_imagenet_split_is_uint8_with_the_cifar_interface(fake_imagenet):
    from inversion.data import image_folder
    from inversion.feedforward.experiment import load_split

    train = load_split("imagenet", "train", 10, 32)
    assert train.images.dtype == torch.uint8 and train.images.shape == (10, 3, 32, 32)
    assert train.split == "train" and len(train) == 10 and len(train.classes) == CLASSES
    assert set(train.labels.tolist()) <= set(range(CLASSES)) and len(set(train.labels.tolist())) > 1
    assert torch.equal(train.float_images(slice(2, 4)), train.images[2:4].float() / 255)
    sub = train.subset(slice(0, 3))
    assert torch.equal(sub.images, train.images[:3]) and sub.source == train.source
    assert torch.equal(load_split("imagenet", "train", 10, 32).images, train.images)   # seeded
    val = load_split("imagenet", "test", None, 32)   # "test" reads val/, all of it
    assert len(val) == 3 * CLASSES and val.split == "test"
    # the same resize + centre crop as the image-folder loader, in the same seeded order
    images, labels = image_folder.load("val", n=None, size=32, uint8=True, progress=False)
    assert torch.equal(val.images, images) and torch.equal(val.labels, labels)
    assert load_split("imagenet", "train", 4, 64).images.shape[-1] == 64
    assert "32px" in train.source and train.source != load_split("imagenet", "train", 9, 32).source
    with pytest.raises(ValueError, match="32 px"):
        load_split("cifar10", "test", 4, 128)


def test_resized_input_feeds_the_model_its_input_size():
    torch.manual_seed(0)
    config = InputConfig(input_size=(3, 48, 48), num_classes=1000, interpolation="bicubic")
    plain = Classifier(resnet(channels=(4, 8), blocks=(1, 1), num_classes=1000), config, "tiny").eval()
    seen = []
    plain.net.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    wrapped = fed_at(plain, 32)
    assert isinstance(wrapped, ResizedInput) and wrapped.input_size == 32 and plain.input_size == 48
    assert fed_at(plain, 48) is plain
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        out = wrapped(x)
        expected = plain(F.interpolate(x, size=(48, 48), mode="bicubic", align_corners=False).clamp(0, 1))
    assert seen == [(3, 3, 48, 48), (3, 3, 48, 48)] and out.shape == (3, 1000)
    assert torch.allclose(out, expected, atol=1e-6)
    assert list(wrapped.state_dict()) == list(plain.state_dict())   # same weight fingerprint


def test_factor_free_study_on_an_image_folder(fake_imagenet):
    from inversion.feedforward.experiment import Study, _logits_path

    study = Study.setup("smoke", 16, 8, None, judge=JUDGE, dataset="imagenet", image_size=32, seed=0)
    assert study.image_size == 32 and study.n_classes == 1000 and study.chance_agreement == 1e-3
    assert isinstance(study.judge, ResizedInput) and isinstance(study.classifier(MODEL), ResizedInput)
    logits = study.logits(MODEL, "train")
    assert logits.shape == (16, 1000) and torch.isfinite(logits).all()
    # the resize enters the logits' cache key (the same images at the model's own side would not)
    path = _logits_path(MODEL, "smoke", "train", study.train, "imagenet", 32)
    assert path.is_file() and path != _logits_path(MODEL, "smoke", "train", study.train, "imagenet", 48)
    config = study.generator_config(MODEL, TINY_GAN)
    assert config.generator.logit_dim == config.discriminator.logit_dim == 1000
    assert config.generator.image_size == 32 and config.n_train == 16
    assert study.decoder_config(MODEL, {"steps": 2}).logit_dim == 1000
    with pytest.raises(ValueError, match="asks for 64 px"):
        study.generator_config(MODEL, {**TINY_GAN, "image_size": 64})
    inverse = study.gan(MODEL, TINY_GAN)
    assert all(np.isfinite(inverse.log[k]).all() and len(inverse.log[k]) == 2 for k in ("d_loss", "g_loss"))
    recon = inverse.invert(study.logits(MODEL, "test"), seed=0)
    assert recon.shape == (8, 3, 32, 32) and 0 <= recon.min() and recon.max() <= 1
    decoder, _ = study.decoder(MODEL, {"steps": 2, "batch_size": 4})
    assert decoder.invert(study.logits(MODEL, "test")).shape == (8, 3, 32, 32)
    row = study.summary(recon, method="ours")
    assert row["n"] == 8 and 0 <= row["judge_agrees"] <= 1
    assert np.isfinite([row["psnr"], row["ssim"], row["thumbnail_error"]]).all()
    # the originals agree with themselves: the judge's top-1 on a copy of the image is its own
    assert study.summary(study.test.float_images())["judge_agrees"] == 1.0
    assert np.isfinite(study.chance["thumbnail"]) and study.chance["thumbnail"] > 0
    assert study.class_names[:CLASSES] == study.test.classes


def test_generator_and_discriminator_at_128_px_with_1000_logits():
    from inversion.feedforward.discriminator import ProjectionDiscriminator
    from inversion.feedforward.experiment import gan_config
    from inversion.feedforward.generator import LogitConditionedGenerator
    from inversion.feedforward.train import train_step

    ch = 4   # BigGAN's 128 px layout (G 16ch,16ch,8ch,4ch,2ch,ch from 4x4; D ch..16ch, five down-samplings)
    params = {"z_dim": 24, "embed_dim": 8, "batch_size": 2, "image_size": 128,
              "g_widths": [16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, ch],
              "d_widths": [ch, 2 * ch, 4 * ch, 8 * ch, 16 * ch, 16 * ch], "d_downsample": [True] * 5 + [False]}
    c = gan_config(params, logit_dim=1000)
    assert c.generator.bottom == 4 and c.generator.image_size == 128 and c.generator.z_chunks() == [4] * 6
    G, D = LogitConditionedGenerator(c.generator), ProjectionDiscriminator(c.discriminator)
    assert D.embed.weight.shape == (16 * ch, 1000) and G.embed.weight.shape == (8, 1000)
    torch.manual_seed(0)
    real_logits = torch.randn(6, 1000) * 3
    G.set_logit_statistics(real_logits), D.set_logit_statistics(real_logits)
    fake = G(real_logits[:2], torch.randn(2, 24))
    assert fake.shape == (2, 3, 128, 128) and D(fake, real_logits[:2]).shape == (2,)
    images = torch.randint(0, 256, (6, 3, 128, 128), dtype=torch.uint8)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.0, 0.999)) for m in (G, D))
    before = [p.detach().clone() for p in G.parameters()]
    losses = train_step(G, D, opt_g, opt_d, images, real_logits, torch.Generator().manual_seed(0), c)
    assert all(torch.isfinite(v) for v in losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    with pytest.raises(ValueError, match="cannot make 100x100"):
        gan_config({**params, "image_size": 100}, logit_dim=1000)
    with pytest.raises(ValueError, match="logits must have shape"):
        G(torch.randn(2, 10), torch.randn(2, 24))


def test_paper_recipe_builds_the_128_px_generator():
    from inversion import reproduce
    from inversion.feedforward.experiment import gan_config

    p3 = reproduce.parameters("03_robust_vs_standard", "paper")
    c = gan_config({**p3["gan"], **p3["cifar_gan"], "image_size": p3["image_size"]}, logit_dim=1000)
    assert p3["natural_dataset"] == "imagenet" and c.generator.image_size == p3["image_size"] == 128
    assert c.generator.widths[0] == 16 * c.generator.widths[-1] and c.discriminator.widths[-1] == 16 * c.discriminator.widths[0]
    assert sum(c.discriminator.downsample) == 5 and c.generator.logit_dim == c.discriminator.logit_dim == 1000


def test_logit_dim_follows_the_classifier_and_a_mismatch_is_refused():
    from inversion.feedforward.experiment import Study, gan_config
    from inversion.feedforward.train import train_logit_inverse

    assert Study.logit_dim("cifar10-resnet20") == 10 and Study.logit_dim("imagenet-resnet50") == 1000
    assert gan_config(TINY_GAN).generator.logit_dim == 10   # the default stays the ten-class one
    net = Classifier(resnet(channels=(4, 8), blocks=(1, 1), num_classes=1000), InputConfig(num_classes=1000)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="generator expects 10 logits, the classifier gives 1000"):
        train_logit_inverse(net, torch.zeros(8, 3, 32, 32, dtype=torch.uint8), gan_config(TINY_GAN))


def test_ten_class_32px_cache_keys_are_unchanged():
    """Keys read before the ImageNet paths were added (commit 00f816a): the mini and smoke caches
    (and the committed figures made from them) must stay valid."""
    from inversion import reproduce
    from inversion.data.cifar10 import Cifar10
    from inversion.feedforward.experiment import Study, _logits_path
    from inversion.feedforward.train import cache_path

    def study(profile, dataset, n):
        data = Cifar10(torch.zeros(n, 3, 32, 32, dtype=torch.uint8), torch.arange(n) % 10, "jpeg", "train")
        return Study(profile, data, data, None, {}, None, {}, {}, dataset=dataset, image_size=32)

    expected = {"mini": ("26e451f0b69a", "1b8e0a46f93f", "d96d843bf723"),
                "smoke": ("171bf043ec0e", "a8fe9968fc33", "4270d11be4c8")}
    for profile, (gan0, gan1, dec0) in expected.items():
        p3 = reproduce.parameters("03_robust_vs_standard", profile)
        st, name = study(profile, "cifar10", p3["cifar_n_train"]), p3["cifar_standard"]
        for s, key in zip(p3["seeds"], (gan0, gan1)):
            config = st.generator_config(name, p3["gan"], **{**p3["cifar_gan"], "seed": s})
            assert cache_path("feedforward", name, profile, config).name == f"feedforward-{name}-{key}.pt"
        dec = st.decoder_config(name, {**p3["decoder"], "seed": 0})
        assert cache_path("pixel-decoder", name, profile, dec).name == f"pixel-decoder-{name}-{dec0}.pt"
    small = study("mini", "cifar10", 100)
    assert _logits_path("cifar10-resnet20", "mini", "train", small.train, "cifar10", 32).name == \
        "logits-cifar10-resnet20-train-d828522686c6.pt"
    # the Fashion-Scenes mini recipe of commit 00f816a (fp32) through the Study: the same key as before
    fashion_gan = {"steps": 1250, "batch_size": 16, "lr": 0.0004, "lr_d": 0.0008, "n_dis": 2, "betas": [0.0, 0.9],
                   "z_dim": 64, "embed_dim": 32, "g_widths": [64, 32, 16, 16], "d_widths": [16, 32, 64],
                   "d_downsample": [True, True, True], "ema_decay": 0.999, "pixel_weight": 0.0,
                   "logit_weight": 0.0, "checkpoint_every": 250, "seed": 0}
    scenes = study("mini", "fashion-scenes", 4096)
    assert cache_path("feedforward", "cnn", "mini", scenes.generator_config("cnn", fashion_gan)).name == \
        "feedforward-cnn-c94c09aa3b64.pt"
    assert cache_path("pixel-decoder", "cnn", "mini", scenes.decoder_config(
        "cnn", {"steps": 400, "batch_size": 64, "lr": 0.001, "seed": 0})).name == "pixel-decoder-cnn-96bd8dee50a1.pt"


def test_chance_and_prototypes_with_classes_seen_once():
    """1000 classes in a small evaluation set: a class seen once has no same-class partner (left out
    of the chance mean) and a class without training images has no prototypes (NaN distances)."""
    from inversion.data.imagenet import ImageNet
    from inversion.feedforward.evaluate import chance_reference, thumbnail_error
    from inversion.feedforward.invariance import class_prototype_distances
    from inversion.feedforward.probe import same_class_partner

    torch.manual_seed(0)
    images = torch.randint(0, 256, (7, 3, 16, 16), dtype=torch.uint8)
    data = ImageNet(images, torch.tensor([0, 0, 0, 1, 1, 2, 999]), "fake")
    partner = same_class_partner(data.labels)
    errors = thumbnail_error(data.float_images(partner), data.float_images())
    assert chance_reference(data)["thumbnail"] == pytest.approx(errors[:5].mean().item())   # classes 2, 999 alone
    assert np.isnan(chance_reference(data.subset([5, 6]))["thumbnail"])
    both = data.subset([0, 1, 3, 4])
    assert chance_reference(both)["thumbnail"] == pytest.approx(
        thumbnail_error(both.float_images(same_class_partner(both.labels)), both.float_images()).mean().item())
    recon = torch.rand(3, 3, 16, 16)
    as_uint8 = {0: images[:3], 1: images[3:5]}
    as_float = {c: v.float() / 255 for c, v in as_uint8.items()}
    d8 = class_prototype_distances(recon, recon, torch.tensor([0, 1, 7]), as_uint8)
    df = class_prototype_distances(recon, recon, torch.tensor([0, 1, 7]), as_float)
    assert torch.equal(d8["to_prototypes_min"][:2], df["to_prototypes_min"][:2])
    assert torch.isnan(d8["to_prototypes_mean"][2]) and torch.isnan(df["to_prototypes_min"][2])
    assert (d8["to_input"] == 0).all()
