"""The model zoo: every classifier of the study is a registered name.

``load("cnn-robust", profile="mini")`` returns a :class:`Classifier` (input: RGB in [0, 1]),
training it on Fashion-Scenes and caching the checkpoint the first time. Three sources:
``trained`` (mini zoo, trained here from a :class:`Recipe`), ``cifar10`` (real pretrained
CIFAR-10 ResNets), ``timm`` (the paper profile's ImageNet models).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ..data import fashion_scenes
from ..paths import checkpoint_dir, data_dir
from . import architectures, cifar_resnet
from .architectures import Classifier, InputConfig
from .training import Recipe, accuracy, robust_accuracy, train

PROFILES = ("smoke", "mini", "paper")
SCENES = InputConfig(mean=(0.5, 0.5, 0.5), std=(0.3, 0.3, 0.3), class_names=fashion_scenes.CLASSES)
CIFAR10 = InputConfig(mean=cifar_resnet.CIFAR10_MEAN, std=cifar_resnet.CIFAR10_STD,
                      class_names=cifar_resnet.CIFAR10_CLASSES)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it, how to feed it, and where its weights come from."""

    name: str
    family: str                         # "cnn", "vit", "mlp" (architecture family)
    source: str                         # "trained" | "cifar10" | "timm"
    build: Callable[[], nn.Module] = field(compare=False)
    config: InputConfig = SCENES
    dataset: str = "fashion-scenes"
    recipe: Recipe | None = None        # for source="trained"
    description: str = ""
    timm_name: str = ""                 # for source="timm"
    robust_eps: float | None = None     # L2 radius the model is evaluated (and trained) against


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


def list_models(source: str | None = None, dataset: str | None = None) -> list[str]:
    return [n for n, s in REGISTRY.items()
            if (source is None or s.source == source) and (dataset is None or s.dataset == dataset)]


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown model {name!r}.{hint} Registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


# --- the mini zoo: Fashion-Scenes classifiers trained here ------------------------------------
ROBUST_EPS = 0.5
_cnn = lambda: architectures.resnet(channels=(16, 32, 64), blocks=(2, 2, 2))  # noqa: E731
# Epochs are what the 2-core budget of the mini profile affords (see README, "Budgets").
register(ModelSpec("cnn", "cnn", "trained", _cnn, recipe=Recipe(epochs=4),
                   description="ResNet-14 (16-32-64 channels, BatchNorm), cross-entropy"))
register(ModelSpec("cnn-robust", "cnn", "trained", _cnn, robust_eps=ROBUST_EPS,
                   recipe=Recipe(objective="adversarial", epochs=2.5, pgd_eps=ROBUST_EPS, pgd_steps=1),
                   description=f"same ResNet-14, L2 PGD adversarial training (eps={ROBUST_EPS}, 1 step)"))
register(ModelSpec("cnn-smooth", "cnn", "trained", _cnn, recipe=Recipe(objective="label_smoothing", epochs=2.5),
                   description="same ResNet-14, label smoothing 0.1"))
register(ModelSpec("cnn-mixup", "cnn", "trained", _cnn, recipe=Recipe(objective="mixup", epochs=2.5),
                   description="same ResNet-14, mixup (alpha 0.4)"))
register(ModelSpec("vit", "vit", "trained", architectures.vit, recipe=Recipe(epochs=3.5, lr=2e-3),
                   description="ViT, 4 blocks, width 96, 4x4 patches"))
register(ModelSpec("mlp", "mlp", "trained", architectures.mlp_mixer, recipe=Recipe(epochs=3.5, lr=2e-3),
                   description="MLP-Mixer, 4 blocks, width 96, 4x4 patches"))
register(ModelSpec("judge-vgg", "cnn", "trained", architectures.vgg, recipe=Recipe(epochs=3, seed=1),
                   description="VGG-style CNN (16-32-64), independently trained outside judge"))

# --- real pretrained CIFAR-10 ResNets ------------------------------------------------------------
for _depth in cifar_resnet.CHECKPOINTS:
    register(ModelSpec(f"cifar10-resnet{_depth}", "cnn", "cifar10",
                       lambda d=_depth: cifar_resnet.CifarResNet(d), config=CIFAR10, dataset="cifar10",
                       description=f"ResNet-{_depth} pretrained on CIFAR-10 (Idelbayev)"))

# --- the paper profile's ImageNet classifiers through timm ------------------------------------------
for _name, _timm, _family, _desc in [
    ("imagenet-resnet50", "resnet50.tv_in1k", "cnn", "ResNet-50 (torchvision weights)"),
    ("imagenet-vit-b16", "vit_base_patch16_224.augreg_in21k_ft_in1k", "vit", "ViT-B/16 at 224"),
    ("imagenet-deit-s", "deit_small_patch16_224.fb_in1k", "vit", "DeiT-S/16"),
    ("imagenet-resmlp-24", "resmlp_24_224.fb_in1k", "mlp", "ResMLP-24"),
    ("imagenet-mixer-b16", "mixer_b16_224.goog_in21k_ft_in1k", "mlp", "MLP-Mixer-B/16"),
    ("imagenet-resnet50-robust", "resnet50", "cnn",
     "ResNet-50 L2-robust (eps 3, Madry lab 'robustness'); needs a local checkpoint file"),
]:
    register(ModelSpec(_name, _family, "timm", lambda t=_timm: _timm_model(t, pretrained=False),
                       config=InputConfig(input_size=(3, 224, 224), mean=(0.485, 0.456, 0.406),
                                          std=(0.229, 0.224, 0.225), num_classes=1000),
                       dataset="imagenet", timm_name=_timm, description=_desc))


def _timm_model(timm_name: str, pretrained: bool) -> nn.Module:
    import timm

    return timm.create_model(timm_name, pretrained=pretrained)


def scaled_recipe(spec: ModelSpec, profile: str) -> Recipe:
    """The recipe at a profile's scale: smoke trains on 2048 images for two epochs (32 steps)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    if profile == "smoke":
        return dataclasses.replace(spec.recipe, n_train=2048, epochs=2.0)
    return spec.recipe


def test_set(profile: str) -> fashion_scenes.Scenes:
    """The evaluation split of the zoo: all 10k test scenes (smoke: a seeded 500)."""
    return fashion_scenes.load("test", n=500 if profile == "smoke" else None)


def checkpoint_files(name: str, profile: str) -> tuple[Path, Path]:
    spec = get_spec(name)
    stem = checkpoint_dir(profile) / f"{name}-{scaled_recipe(spec, profile).key()}"
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def read_metadata(name: str, profile: str) -> dict | None:
    """The metadata of a cached checkpoint (recipe, accuracies, hash, time), or None."""
    weights, meta = checkpoint_files(name, profile)
    if not (weights.is_file() and meta.is_file()):
        return None
    return json.loads(meta.read_text())


def _train_and_cache(spec: ModelSpec, profile: str, device) -> Classifier:
    recipe = scaled_recipe(spec, profile)
    torch.manual_seed(recipe.seed)
    model = Classifier(spec.build(), spec.config, spec.name)
    train_set = fashion_scenes.load("train")
    log = train(model, train_set.images, train_set.labels, recipe, device, desc=f"train {spec.name}")
    test = test_set(profile)
    metrics = {"test_accuracy": accuracy(model, test.images, test.labels, device=device)}
    if spec.robust_eps is not None or spec.name == "cnn":  # the standard CNN is the robust model's reference
        n = 200 if profile == "smoke" else 1000
        metrics["robust_accuracy"] = robust_accuracy(model, test.images[:n], test.labels[:n],
                                                     eps=ROBUST_EPS, steps=10, device=device)
        metrics["robust_attack"] = f"L2 PGD, eps={ROBUST_EPS}, 10 steps, first {n} test images"
    weights, meta = checkpoint_files(spec.name, profile)
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().cpu() for k, v in model.net.state_dict().items()}, str(weights))
    meta.write_text(json.dumps({
        "name": spec.name, "description": spec.description, "dataset": spec.dataset,
        "profile": profile, "recipe": dataclasses.asdict(recipe), "seed": recipe.seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(log["train_seconds"], 1), "train_steps": log["steps"],
        "final_train_loss": round(log["final_loss"], 4), **metrics,
        "sha256": cifar_resnet.sha256(weights), "torch": torch.__version__,
    }, indent=2))
    return model


def _load_timm(spec: ModelSpec) -> nn.Module:
    """Local checkpoint first (``INVERSION_TIMM_DIR`` or ``<data>/checkpoints/paper``), else the hub."""
    folder = Path(os.environ.get("INVERSION_TIMM_DIR", data_dir() / "checkpoints" / "paper"))
    for suffix in (".safetensors", ".pth", ".pt"):
        path = folder / f"{spec.name}{suffix}"
        if path.is_file():
            net = spec.build()
            state = load_file(str(path)) if suffix == ".safetensors" else torch.load(
                path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state.get("model", state))
            # robustness-library checkpoints prefix the classifier with "module.model."
            state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()
                     if not k.startswith(("module.attacker", "module.normalizer", "attacker", "normalizer"))}
            net.load_state_dict(state)
            return net
    if spec.name.endswith("-robust"):
        raise FileNotFoundError(f"{spec.name} has no hub weights: put its checkpoint at {folder}/{spec.name}.pt")
    try:
        return _timm_model(spec.timm_name, pretrained=True)
    except Exception as error:  # offline: say where a local file would be found
        raise FileNotFoundError(
            f"could not download {spec.timm_name} ({error}); save its weights as "
            f"{folder}/{spec.name}.safetensors (or set INVERSION_TIMM_DIR)") from error


def _train_in_worker(name: str, profile: str) -> str:
    torch.set_num_threads(1)
    load(name, profile)
    return name


def ensure_trained(names: list[str], profile: str = "mini", workers: int = 2) -> None:
    """Train every not-yet-cached model of ``names``, ``workers`` models at a time.

    Each worker process trains one model on one thread: on a 2-core CPU two single-threaded
    trainings finish sooner than two consecutive two-threaded ones. Results are the same as
    ``load`` in a single-threaded process (same seed, same machine, same numbers).
    """
    import concurrent.futures
    import multiprocessing

    from tqdm.auto import tqdm

    missing = [n for n in names if get_spec(n).source == "trained" and not checkpoint_files(n, profile)[0].is_file()]
    if not missing:
        return
    if workers <= 1 or len(missing) == 1:
        for name in tqdm(missing, desc="zoo"):
            _train_in_worker(name, profile)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = [pool.submit(_train_in_worker, n, profile) for n in missing]
        for job in tqdm(concurrent.futures.as_completed(jobs), total=len(jobs), desc=f"zoo ({workers} workers)"):
            job.result()


def load(name: str, profile: str = "mini", device: str | torch.device = "cpu",
         train_if_missing: bool = True) -> Classifier:
    """A ready classifier in eval mode with frozen parameters (input RGB in [0, 1])."""
    spec = get_spec(name)
    if spec.source == "trained":
        weights, _ = checkpoint_files(name, profile)
        if weights.is_file():
            model = Classifier(spec.build(), spec.config, name)
            model.net.load_state_dict(load_file(str(weights)))
        elif train_if_missing:
            model = _train_and_cache(spec, profile, device)
        else:
            raise FileNotFoundError(f"{name} ({profile}) is not trained yet: {weights} is missing")
    elif spec.source == "cifar10":
        model = Classifier(cifar_resnet.pretrained(int(name.removeprefix("cifar10-resnet"))), spec.config, name)
    else:
        model = Classifier(_load_timm(spec), spec.config, name)
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model
