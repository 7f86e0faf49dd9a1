import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from inversion.models import REGISTRY, Classifier, InputConfig, Recipe, get_spec, list_models, load, zoo
from inversion.models import architectures, training
from inversion.models.cifar_resnet import CifarResNet

# Reference logits of the first image, from ../shared/assets/cifar10-resnets/README.md.
CIFAR_REFERENCE = {
    20: ([5.8755, 7.0957, 0.4333, -2.9792, -5.1553, -5.4368, -6.8389, -1.6455, 2.6579, 5.9223], [1, 1]),
    32: ([8.1196, 0.0775, 1.6580, 1.0862, -3.1824, -3.4449, -6.7252, -0.3148, 0.6152, 2.0886], [0, 0]),
    44: ([4.7768, 8.3242, 3.4751, -6.8368, -4.5267, -2.6210, -5.5926, 1.0494, -2.3020, 4.3036], [1, 1]),
    56: ([0.8376, 2.5642, 1.0797, 2.0580, -5.5151, -4.1383, -1.9916, -2.6116, -1.1605, 8.8565], [9, 9]),
}


def _check_reference_logits(model, expected, argmax):
    """The first image's logits and both images' classes on the assets' fixed test input."""
    x = (torch.arange(2 * 3 * 32 * 32).reshape(2, 3, 32, 32) % 97).float() / 96
    with torch.no_grad():
        logits = model(x)
    assert torch.allclose(logits[0], torch.tensor(expected), atol=1e-3)
    assert logits.argmax(1).tolist() == argmax


@pytest.mark.parametrize("depth", sorted(CIFAR_REFERENCE))
def test_cifar_resnet_reference_logits(depth):
    model = load(f"cifar10-resnet{depth}")
    _check_reference_logits(model, *CIFAR_REFERENCE[depth])
    assert not any(p.requires_grad for p in model.parameters())


# Reference logits of the first image, from ../shared/assets/cifar10-robust-resnets/README.md.
ROBUST_REFERENCE = {
    "resnet2b": ([4.2959, 3.1716, 0.3466, -2.4196, -0.4590, -3.8405, -2.9008, -2.8865, 3.3290, 1.3631], [0, 8]),
    "resnet4b": ([3.3227, 5.5472, -1.2205, -1.6273, -3.0368, -4.2475, -3.1252, -2.0245, 4.1932, 2.1749], [1, 1]),
}


@pytest.mark.parametrize("arch", sorted(ROBUST_REFERENCE))
def test_robust_resnet_reference_logits(arch):
    model = load(f"cifar10-{arch}-linf")
    _check_reference_logits(model, *ROBUST_REFERENCE[arch])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    spec = get_spec(f"cifar10-{arch}-linf")
    assert spec.robust_norm == "linf" and spec.robust_eps == pytest.approx(2 / 255)


def test_robust_resnet_checks_the_file_hash(tmp_path, monkeypatch):
    from inversion.models import robust_resnet

    monkeypatch.setenv("CIFAR10_ROBUST_DIR", str(tmp_path))
    torch.save({"state_dict": robust_resnet.RobustResNet("resnet2b").state_dict()}, tmp_path / "resnet2b.pth")
    with pytest.raises(ValueError, match="sha256"):
        robust_resnet.pretrained("resnet2b")
    with pytest.raises(ValueError, match="robust ResNets"):
        robust_resnet.RobustResNet("resnet3b")


def test_cifar_resnet_depths_and_errors():
    assert sum(isinstance(m, torch.nn.Conv2d) for m in CifarResNet(20).modules()) == 19
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(21)


def test_unknown_model_suggests_close_names():
    with pytest.raises(KeyError) as info:
        get_spec("cnn-robsut")
    assert "cnn-robust" in str(info.value)


def test_registry_contents():
    trained = list_models(source="trained")
    assert {"cnn", "vit", "mlp", "cnn-robust", "cnn-smooth", "cnn-mixup", "judge-vgg"} <= set(trained)
    assert len(list_models(source="cifar10")) == 4 and len(list_models(dataset="imagenet")) >= 4
    assert {"cifar10-vit", "cifar10-mixer", "cifar10-resnet20-robust", "cifar10-resnet20-smooth",
            "cifar10-resnet20-mixup", "cifar10-judge-vgg"} <= set(list_models(source="trained", dataset="cifar10"))
    assert list_models(source="cifar10-robust") == ["cifar10-resnet2b-linf", "cifar10-resnet4b-linf"]
    objectives = {get_spec(n).recipe.objective for n in trained}
    assert objectives == set(training.OBJECTIVES)


@pytest.mark.parametrize("name", list_models(source="trained"))
def test_every_trained_architecture_builds(name):
    spec = get_spec(name)
    model = Classifier(spec.build(), spec.config, name).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_classifier_normalizes_inside():
    net = torch.nn.Flatten()
    model = Classifier(net, InputConfig(input_size=(3, 1, 1), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0)))
    out = model(torch.ones(1, 3, 1, 1))
    assert torch.allclose(out, torch.tensor([[2.0, 1.0, 0.5]]))


def test_pgd_stays_in_ball_and_raises_loss():
    model = Classifier(architectures.resnet((8, 8, 8), (1, 1, 1)), InputConfig()).eval()
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    adv = training.pgd_l2(model, x, y, eps=0.5, steps=5, generator=torch.Generator().manual_seed(0))
    assert adv.min() >= 0 and adv.max() <= 1
    assert ((adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-4).all()
    with torch.no_grad():
        assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y)


def test_augment_shifts_within_bounds():
    x = torch.rand(16, 3, 8, 8)
    out = training.augment(x, torch.Generator().manual_seed(0), max_shift=2)
    assert out.shape == x.shape
    assert not torch.equal(out, x)
    # every output pixel value appears in the (edge-padded) input of its image
    assert all(torch.isin(out[i], x[i]).all() for i in range(16))


@pytest.mark.parametrize("objective", training.OBJECTIVES)
def test_training_lowers_loss(objective):
    scenes_x = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    labels = (scenes_x.float().mean((1, 2, 3)) > 127.5).long()  # a learnable rule: mean brightness
    model = Classifier(architectures.resnet((8, 8, 8), (1, 1, 1)), InputConfig())
    recipe = Recipe(objective=objective, epochs=6, batch_size=64, lr=1e-2, augment=False, pgd_eps=0.1)
    log = training.train(model, scenes_x, labels, recipe)
    history = log["loss_history"]
    assert sum(history[-4:]) / 4 < sum(history[:4]) / 4


def test_training_is_deterministic():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (64,))
    recipe = Recipe(epochs=2, batch_size=32)
    runs = []
    for _ in range(2):
        model = Classifier(architectures.resnet((8, 8, 8), (1, 1, 1)), InputConfig())
        torch.manual_seed(0)
        model = Classifier(architectures.resnet((8, 8, 8), (1, 1, 1)), InputConfig())
        training.train(model, x, y, recipe)
        runs.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_recipe_rejects_unknown_objective():
    with pytest.raises(ValueError, match="objective"):
        Recipe(objective="contrastive")


def _smoke_test_set():
    test = zoo.test_set("smoke")
    return test.images, test.labels


def test_smoke_zoo_checkpoint_cache():
    model = load("cnn", "smoke")
    meta = zoo.read_metadata("cnn", "smoke")
    weights, _ = zoo.checkpoint_files("cnn", "smoke")
    from inversion.paths import sha256
    assert meta["sha256"] == sha256(weights)
    # smoke models are plumbing only: 32 steps sit on the initial loss plateau (~chance accuracy);
    # whether training learns is tested by test_training_lowers_loss
    assert meta["recipe"]["n_train"] == 2048 and meta["train_steps"] == 32
    assert 0 <= meta["test_accuracy"] <= 1 and meta["final_train_loss"] > 0
    assert meta["test_accuracy"] == pytest.approx(training.accuracy(model, *_smoke_test_set()), abs=1e-6)
    assert "robust_accuracy" in meta
    again = load("cnn", "smoke")
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="profile"):
        zoo.scaled_recipe(get_spec("cnn"), "huge")


def test_timm_loader_uses_local_checkpoint(tmp_path, monkeypatch):
    """The paper profile's path: a timm model whose weights come from a local file."""
    from safetensors.torch import save_file

    spec = dataclasses.replace(get_spec("imagenet-resnet50"), name="imagenet-test-resnet10t",
                               timm_name="resnet10t",
                               build=lambda: zoo._timm_model("resnet10t", pretrained=False))
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    monkeypatch.setenv("INVERSION_TIMM_DIR", str(tmp_path))
    torch.manual_seed(1)
    reference = spec.build().eval()
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / f"{spec.name}.safetensors"))
    model = load(spec.name, "paper")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference((x - model.mean) / model.std)
        assert torch.allclose(model(x), expected, atol=1e-5)
    # a robustness-library style checkpoint (prefixed keys, attacker copy) loads too
    robust = {f"module.model.{k}": v for k, v in reference.state_dict().items()}
    robust.update({f"module.attacker.model.{k}": v for k, v in reference.state_dict().items()})
    (tmp_path / f"{spec.name}.safetensors").unlink()
    torch.save({"model": robust}, tmp_path / f"{spec.name}.pt")
    with torch.no_grad():
        assert torch.allclose(load(spec.name, "paper")(x), expected, atol=1e-5)


def test_pgd_linf_stays_in_box_and_raises_loss():
    model = Classifier(architectures.resnet((8, 8, 8), (1, 1, 1)), InputConfig()).eval()
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    adv = training.pgd_linf(model, x, y, eps=4 / 255, steps=5, generator=torch.Generator().manual_seed(0))
    assert adv.min() >= 0 and adv.max() <= 1 and (adv - x).abs().max() <= 4 / 255 + 1e-6
    with torch.no_grad():
        assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y)
    with pytest.raises(ValueError, match="norm"):
        training.robust_accuracy(model, (x * 255).byte(), y, eps=0.1, norm="l1")


@pytest.mark.parametrize("name", list_models(source="timm"))
def test_timm_input_config_is_timms_own(name):
    """Mean, std, input size and interpolation of every timm model come from timm's data config."""
    import timm
    from timm.data import resolve_model_data_config

    spec = get_spec(name)
    with torch.device("meta"):   # the model's own pretrained config, without allocating its weights
        cfg = resolve_model_data_config(timm.create_model(spec.timm_name, pretrained=False))
    assert spec.config.input_size == tuple(cfg["input_size"]) and spec.config.mean == tuple(cfg["mean"])
    assert spec.config.std == tuple(cfg["std"]) and spec.config.interpolation == cfg["interpolation"]
    assert spec.config.crop_pct == cfg["crop_pct"]
    assert spec.config.num_classes == 1000
    if name in ("imagenet-vit-b16", "imagenet-mixer-b16"):   # trained with mean = std = 0.5, not ImageNet's statistics
        assert spec.config.mean == spec.config.std == (0.5, 0.5, 0.5)
    model = Classifier(nn.Identity(), spec.config)             # the wrapper normalizes with these values
    assert torch.allclose(model(torch.full((1, 3, 2, 2), 0.75)), (0.75 - torch.tensor(cfg["mean"])).div(
        torch.tensor(cfg["std"])).view(1, 3, 1, 1).expand(1, 3, 2, 2))


def test_find_or_download_explains_what_is_missing(tmp_path):
    from inversion.paths import find_or_download

    folders = [tmp_path / "a", tmp_path / "b"]
    with pytest.raises(FileNotFoundError, match="not found"):
        find_or_download("w.th", folders, "file:///nonexistent/w.th", "00", "SOME_DIR", download=False)
    with pytest.raises(FileNotFoundError, match="SOME_DIR"):
        find_or_download("w.th", folders, "file:///nonexistent/w.th", "00", "SOME_DIR")
    assert not (folders[-1] / "w.th").exists()
    (folders[0]).mkdir()
    (folders[0] / "w.th").write_bytes(b"weights")
    from inversion.paths import sha256
    digest = sha256(folders[0] / "w.th")
    assert find_or_download("w.th", folders, "", digest[:8], "SOME_DIR") == folders[0] / "w.th"
    with pytest.raises(ValueError, match="sha256"):
        find_or_download("w.th", folders, "", "zz", "SOME_DIR")
