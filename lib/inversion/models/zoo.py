"""The model zoo: every classifier of the study is a registered name.

``load("cnn-robust", profile="mini")`` returns a :class:`Classifier` (input: RGB in [0, 1]).
Sources: ``trained`` (classifiers the study trains from a :class:`Recipe`, on Fashion-Scenes or
CIFAR-10), ``cifar10`` (real pretrained CIFAR-10 ResNets), ``cifar10-robust`` (real
adversarially trained CIFAR-10 ResNets), ``timm`` (the paper profile's ImageNet models).

Where trained weights live:

* ``mini``: the committed zoo ``data/zoo/mini/<name>.safetensors`` + ``<name>.json`` (recipe,
  recipe hash, seed, accuracies, training time, code commit, sha256). :func:`load` verifies the
  file's sha256 and that its recipe hash is the registered recipe's, and never retrains: a
  mismatch raises :class:`ZooMismatch` saying what differs; ``make zoo ONLY=<name>``
  (:func:`train_zoo`) retrains it.
* ``smoke`` and ``paper``: trained on first use (paper: on the requested device) and cached in
  ``<data>/checkpoints/<profile>/<name>-<recipe hash>.safetensors``.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ..data import cifar10, fashion_scenes
from ..paths import checkpoint_dir, data_dir, repo_root, sha256
from ..precision import eager_attention
from . import architectures, cifar_resnet, robust_resnet
from .architectures import Classifier, InputConfig
from .training import TRAINING_CODE_VERSION, Recipe, accuracy, robust_accuracy, train

PROFILES = ("smoke", "mini", "paper")
SCENES = InputConfig(mean=(0.5, 0.5, 0.5), std=(0.3, 0.3, 0.3), class_names=fashion_scenes.CLASSES)
CIFAR10 = InputConfig(mean=cifar_resnet.CIFAR10_MEAN, std=cifar_resnet.CIFAR10_STD,
                      class_names=cifar_resnet.CIFAR10_CLASSES)
CIFAR10_STATS = InputConfig(mean=robust_resnet.CIFAR10_MEAN, std=robust_resnet.CIFAR10_STD,
                            class_names=cifar10.CLASSES)   # CIFAR-10's own channel statistics


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it, how to feed it, and where its weights come from."""

    name: str
    family: str                         # "cnn", "vit", "mlp" (architecture family)
    source: str                         # "trained" | "cifar10" | "cifar10-robust" | "timm"
    build: Callable[[], nn.Module] = field(compare=False)
    config: InputConfig = SCENES
    dataset: str = "fashion-scenes"     # "fashion-scenes" | "cifar10" | "imagenet"
    recipe: Recipe | None = None        # for source="trained"
    description: str = ""
    timm_name: str = ""                 # for source="timm"
    robust_eps: float | None = None     # radius the model is evaluated (and trained) against
    robust_norm: str = "l2"             # norm of that radius: "l2" or "linf"


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


# --- the Fashion-Scenes zoo, trained here ------------------------------------------------------
# Epochs are sized from measured single-thread steps/s so that each model trains within the hour
# that `make zoo` allows per model on two cores. Every model trains under bf16 autocast, adopted
# where it was faster and kept test accuracy within 0.5 point of fp32 in a side-by-side run. The
# ViTs gained only once their attention ran eager on the CPU (fused attention made bf16 slower):
# fp32 -> bf16 took them from 1587 / 1175 s to 474 / 468 s, at 0.6185 -> 0.6183 (Fashion-Scenes)
# and 0.6187 -> 0.6194 (CIFAR-10) test accuracy. Those 5 / 6 epochs left both ViTs underfit (final
# training loss 1.02 / 1.03), so the time bf16 saved went into epochs: 25 / 30 (11.7k steps each,
# ~46 min on an AVX-512-BF16 EPYC at its measured 237 ms per step; 27.6 / 27.3 min on an AMX Xeon),
# which took their test accuracy to 0.810 / 0.756.
ROBUST_EPS = 0.5
_cnn = lambda: architectures.resnet(channels=(16, 32, 64), blocks=(2, 2, 2))  # noqa: E731
register(ModelSpec("cnn", "cnn", "trained", _cnn, recipe=Recipe(epochs=8, precision="bf16"),
                   description="ResNet-14 (16-32-64 channels, BatchNorm), cross-entropy"))
register(ModelSpec("vit", "vit", "trained", architectures.vit,
                   recipe=Recipe(epochs=25, lr=1e-3, precision="bf16"),
                   description="ViT, 4 blocks, width 96, 4x4 patches"))
register(ModelSpec("cnn-robust", "cnn", "trained", _cnn, robust_eps=ROBUST_EPS,
                   recipe=Recipe(objective="adversarial", epochs=5, pgd_eps=ROBUST_EPS, pgd_steps=1,
                                 precision="bf16"),
                   description=f"same ResNet-14, L2 PGD adversarial training (eps={ROBUST_EPS}, 1 step)"))
register(ModelSpec("mlp", "mlp", "trained", architectures.mlp_mixer,
                   recipe=Recipe(epochs=8, lr=2e-3, precision="bf16"),
                   description="MLP-Mixer, 4 blocks, width 96, 4x4 patches"))
register(ModelSpec("judge-vgg", "cnn", "trained", architectures.vgg,
                   recipe=Recipe(epochs=8, seed=1, precision="bf16"),
                   description="VGG-style CNN (16-32-64), independently trained outside judge"))
register(ModelSpec("cnn-smooth", "cnn", "trained", _cnn,
                   recipe=Recipe(objective="label_smoothing", epochs=5, precision="bf16"),
                   description="same ResNet-14, label smoothing 0.1"))
register(ModelSpec("cnn-mixup", "cnn", "trained", _cnn, recipe=Recipe(objective="mixup", epochs=5, precision="bf16"),
                   description="same ResNet-14, mixup (alpha 0.4)"))

# --- real pretrained CIFAR-10 ResNets ------------------------------------------------------------
for _depth in cifar_resnet.CHECKPOINTS:
    register(ModelSpec(f"cifar10-resnet{_depth}", "cnn", "cifar10",
                       lambda d=_depth: cifar_resnet.CifarResNet(d), config=CIFAR10, dataset="cifar10",
                       description=f"ResNet-{_depth} pretrained on CIFAR-10 (Idelbayev)"))

# --- real adversarially trained CIFAR-10 ResNets (L-inf 2/255, no BatchNorm) -------------------------
for _name in robust_resnet.ARCHITECTURES:
    register(ModelSpec(f"cifar10-{_name}-linf", "cnn", "cifar10-robust",
                       lambda n=_name: robust_resnet.RobustResNet(n), config=CIFAR10_STATS, dataset="cifar10",
                       robust_eps=2 / 255, robust_norm="linf",
                       description=f"{_name}, L-inf (2/255) adversarially trained on CIFAR-10 (alpha-beta-CROWN)"))

# --- the CIFAR-10 zoo, trained here on the 50k training images ---------------------------------------
_resnet20 = lambda: cifar_resnet.CifarResNet(20)  # noqa: E731
register(ModelSpec("cifar10-resnet20-robust", "cnn", "trained", _resnet20, config=CIFAR10, dataset="cifar10",
                   robust_eps=ROBUST_EPS,
                   recipe=Recipe(objective="adversarial", epochs=2.5, lr=1e-3, pgd_eps=ROBUST_EPS, pgd_steps=2,
                                 precision="bf16", init="cifar10-resnet20"),
                   description=f"the real ResNet-20, fine-tuned with L2 PGD adversarial training "
                               f"(eps={ROBUST_EPS}, 2 steps)"))
register(ModelSpec("cifar10-judge-vgg", "cnn", "trained", lambda: architectures.vgg((32, 64, 128)),
                   config=CIFAR10_STATS, dataset="cifar10",
                   recipe=Recipe(epochs=8, seed=1, precision="bf16"),
                   description="VGG-style CNN (32-64-128), trained independently as an outside judge"))
register(ModelSpec("cifar10-vit", "vit", "trained", architectures.vit, config=CIFAR10_STATS, dataset="cifar10",
                   recipe=Recipe(epochs=30, lr=1e-3, precision="bf16"),
                   description="ViT (timm), 4 blocks, width 96, 4x4 patches"))
register(ModelSpec("cifar10-mixer", "mlp", "trained", architectures.mlp_mixer, config=CIFAR10_STATS,
                   dataset="cifar10", recipe=Recipe(epochs=10, lr=2e-3, precision="bf16"),
                   description="MLP-Mixer (timm), 4 blocks, width 96, 4x4 patches"))
register(ModelSpec("cifar10-resnet20-smooth", "cnn", "trained", _resnet20, config=CIFAR10, dataset="cifar10",
                   recipe=Recipe(objective="label_smoothing", epochs=2, lr=1e-3, precision="bf16",
                                 init="cifar10-resnet20"),
                   description="the real ResNet-20, fine-tuned with label smoothing 0.1"))
register(ModelSpec("cifar10-resnet20-mixup", "cnn", "trained", _resnet20, config=CIFAR10, dataset="cifar10",
                   recipe=Recipe(objective="mixup", epochs=2, lr=1e-3, precision="bf16", init="cifar10-resnet20"),
                   description="the real ResNet-20, fine-tuned with mixup (alpha 0.4)"))

# --- the paper profile's ImageNet classifiers through timm ------------------------------------------
def timm_input_config(timm_name: str) -> InputConfig:
    """Input size, mean, std, interpolation and crop of a timm model, from timm's own data config.

    The same values as ``timm.data.resolve_model_data_config(model)``, read from the model's
    pretrained config without building the model.
    """
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    cfg = resolve_data_config({}, pretrained_cfg=get_pretrained_cfg(timm_name).to_dict())
    return InputConfig(input_size=tuple(cfg["input_size"]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                       num_classes=1000, interpolation=cfg["interpolation"], crop_pct=cfg["crop_pct"])


for _name, _timm, _family, _desc in [
    ("imagenet-resnet50", "resnet50.tv_in1k", "cnn", "ResNet-50 (torchvision weights)"),
    ("imagenet-repvgg-a2", "repvgg_a2.rvgg_in1k", "cnn",
     "RepVGG-A2 (timm, training-time 3x3 + 1x1 + identity branches; 22 conv layers deep)"),
    ("imagenet-vit-b16", "vit_base_patch16_224.augreg_in21k_ft_in1k", "vit", "ViT-B/16 at 224"),
    ("imagenet-deit-s", "deit_small_patch16_224.fb_in1k", "vit", "DeiT-S/16"),
    ("imagenet-resmlp-24", "resmlp_24_224.fb_in1k", "mlp", "ResMLP-24"),
    ("imagenet-mixer-b16", "mixer_b16_224.goog_in21k_ft_in1k", "mlp", "MLP-Mixer-B/16"),
    ("imagenet-resnet50-robust", "resnet50", "cnn",
     "ResNet-50 L2-robust (eps 3, Madry lab 'robustness'); needs a local checkpoint file"),
]:
    register(ModelSpec(_name, _family, "timm", lambda t=_timm: _timm_model(t, pretrained=False),
                       config=timm_input_config(_timm), dataset="imagenet", timm_name=_timm,
                       description=_desc))


def _timm_model(timm_name: str, pretrained: bool) -> nn.Module:
    import timm

    return timm.create_model(timm_name, pretrained=pretrained)


def scaled_recipe(spec: ModelSpec, profile: str) -> Recipe:
    """The recipe at a profile's scale: smoke trains on 2048 images for two epochs (32 steps)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    if spec.recipe is None:
        raise ValueError(f"{spec.name} is not trained by the study (source {spec.source!r})")
    if profile == "smoke":
        return dataclasses.replace(spec.recipe, n_train=2048, epochs=2.0)
    return spec.recipe


# --- data of the zoo ---------------------------------------------------------------------------------
def train_set(dataset: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """uint8 training images, labels and the data source of a zoo dataset (never test images)."""
    if dataset == "fashion-scenes":
        scenes = fashion_scenes.load("train")
        return scenes.images, scenes.labels, "fashion-scenes"
    if dataset == "cifar10":
        data = cifar10.load("train")
        return data.images, data.labels, data.source
    raise ValueError(f"no training set for dataset {dataset!r}")


def test_set(profile: str, dataset: str = "fashion-scenes"):
    """The evaluation split of the zoo: the whole test split (smoke: a seeded 500).

    Fashion-Scenes: :class:`fashion_scenes.Scenes`; CIFAR-10: :class:`cifar10.Cifar10` (its
    ``source`` says which copy).
    """
    n = 500 if profile == "smoke" else None
    if dataset == "fashion-scenes":
        return fashion_scenes.load("test", n=n)
    if dataset == "cifar10":
        return cifar10.load("test", n=n)
    raise ValueError(f"no test set for dataset {dataset!r}")


# --- files -------------------------------------------------------------------------------------------
def zoo_dir(profile: str = "mini") -> Path:
    """The committed zoo of a profile: ``INVERSION_ZOO`` or ``<repo>/data/zoo``, then the profile."""
    return Path(os.environ.get("INVERSION_ZOO", repo_root() / "data" / "zoo")) / profile


def weights_key(name: str, profile: str) -> str:
    """Identity of a trained model's weights: ``<name>-<recipe hash>`` (use it to key caches)."""
    return f"{name}-{scaled_recipe(get_spec(name), profile).key()}"


def checkpoint_files(name: str, profile: str) -> tuple[Path, Path]:
    """(weights, metadata) of a trained model: the committed zoo in mini, the cache otherwise."""
    if profile == "mini":
        get_spec(name)
        folder = zoo_dir(profile)
        return folder / f"{name}.safetensors", folder / f"{name}.json"
    stem = checkpoint_dir(profile) / weights_key(name, profile)
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def partial_file(name: str, profile: str) -> Path:
    """Where an interrupted training keeps its state (ignored by git)."""
    return data_dir() / "checkpoints" / "zoo-partial" / profile / f"{weights_key(name, profile)}.pt"


def read_metadata(name: str, profile: str) -> dict | None:
    """The metadata of a trained model (recipe, accuracies, hash, time), or None."""
    weights, meta = checkpoint_files(name, profile)
    if not (weights.is_file() and meta.is_file()):
        return None
    return json.loads(meta.read_text())


class ZooMismatch(ValueError):
    """A committed zoo file does not belong to the registered model (recipe, code or weights differ)."""


def _retrain_hint(name: str) -> str:
    return f"retrain it with `make zoo ONLY={name}` (python -m inversion.models.train_zoo --only {name})"


def check_committed(name: str, profile: str = "mini") -> list[str]:
    """What differs between a committed zoo model and its registration; empty when it matches."""
    spec = get_spec(name)
    weights, meta_file = checkpoint_files(name, profile)
    missing = [str(p) for p in (weights, meta_file) if not p.is_file()]
    if missing:
        return [f"missing {', '.join(missing)}"]
    meta = json.loads(meta_file.read_text())
    recipe = scaled_recipe(spec, profile)
    problems = []
    if meta.get("recipe_hash") != recipe.key():
        current = dataclasses.asdict(recipe)
        stored = meta.get("recipe", {})
        fields = [f"{k}: {stored.get(k, '(absent)')!r} in the file, {v!r} registered"
                  for k, v in current.items() if stored.get(k, "(absent)") != v]
        fields += [f"{k}: {stored[k]!r} in the file, not a recipe field now" for k in stored if k not in current]
        if meta.get("training_code_version") != TRAINING_CODE_VERSION:
            fields.append(f"training code version {meta.get('training_code_version')} in the file, "
                          f"{TRAINING_CODE_VERSION} now")
        problems.append(f"recipe hash {meta.get('recipe_hash')} in the file, {recipe.key()} registered ("
                        + ("; ".join(fields) or "same fields") + ")")
    actual = sha256(weights)
    if meta.get("sha256") != actual:
        problems.append(f"sha256 of {weights.name} is {actual}, the metadata says {meta.get('sha256')}")
    return problems


TRAINING_CODE = ("lib/inversion/models", "lib/inversion/data", "lib/inversion/precision.py")


def _git_commit() -> tuple[str, bool]:
    """The code's commit and whether the training code has uncommitted changes ("unknown" outside git)."""
    try:
        root = str(repo_root())
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", *TRAINING_CODE], cwd=root,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


# --- training and evaluation -----------------------------------------------------------------------
def evaluate(model: Classifier, spec: ModelSpec, profile: str, device="cpu") -> dict:
    """Test accuracies (and robust accuracies) of a zoo model, as stored in its metadata."""
    test = test_set(profile, spec.dataset)
    metrics = {"test_accuracy": accuracy(model, test.images, test.labels, device=device),
               "test_set": f"{spec.dataset} test, {len(test)} images"}
    if spec.dataset == "cifar10":
        exact = cifar10.exact_first100()
        metrics["data_source"] = test.source
        metrics["exact100_accuracy"] = accuracy(model, exact.images, exact.labels, device=device)
    # the standard CNN is the Fashion-Scenes robust model's reference
    if spec.robust_eps is not None or spec.name == "cnn":
        n = 200 if profile == "smoke" else 1000
        attack = dict(eps=ROBUST_EPS, steps=10, device=device)
        metrics["robust_accuracy"] = robust_accuracy(model, test.images[:n], test.labels[:n], **attack)
        metrics["robust_attack"] = f"L2 PGD, eps={ROBUST_EPS}, 10 steps, first {n} test images"
        if spec.dataset == "cifar10":
            metrics["exact100_robust_accuracy"] = robust_accuracy(model, exact.images, exact.labels, **attack)
            reference = load("cifar10-resnet20", profile, device=device)
            metrics["reference"] = {"cifar10-resnet20": {
                "test_accuracy": accuracy(reference, test.images, test.labels, device=device),
                "robust_accuracy": robust_accuracy(reference, test.images[:n], test.labels[:n], **attack),
                "exact100_accuracy": accuracy(reference, exact.images, exact.labels, device=device),
                "exact100_robust_accuracy": robust_accuracy(reference, exact.images, exact.labels, **attack)}}
    return metrics


def _train_and_cache(spec: ModelSpec, profile: str, device) -> Classifier:
    recipe = scaled_recipe(spec, profile)
    commit, dirty = _git_commit()
    torch.manual_seed(recipe.seed)
    model = Classifier(spec.build(), spec.config, spec.name)
    if recipe.init:
        model.net.load_state_dict(load(recipe.init, profile).net.state_dict())
    images, labels, source = train_set(spec.dataset)
    log = train(model, images, labels, recipe, device, desc=f"train {spec.name}",
                resume_file=partial_file(spec.name, profile))
    model.eval()
    metrics = evaluate(model, spec, profile, device)
    weights, meta = checkpoint_files(spec.name, profile)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(".tmp")
    save_file({k: v.contiguous().cpu() for k, v in model.net.state_dict().items()}, str(tmp))
    tmp.replace(weights)
    meta.write_text(json.dumps({
        "name": spec.name, "description": spec.description, "dataset": spec.dataset,
        "train_data_source": source, "profile": profile, "recipe": dataclasses.asdict(recipe),
        "recipe_hash": recipe.key(), "training_code_version": TRAINING_CODE_VERSION, "seed": recipe.seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(log["train_seconds"], 1), "train_steps": log["steps"],
        "final_train_loss": round(log["final_loss"], 4), **metrics,
        "sha256": sha256(weights), "bytes": weights.stat().st_size, "dtype": "float32",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
        "code_commit": commit, "code_dirty": dirty,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=2) + "\n")
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


def _train_in_worker(name: str, profile: str, device: str = "cpu") -> str:
    """Train one model on ``device``. On the CPU with one thread (the same seed on one thread gives
    the same file on the same machine); the caller's thread count is restored afterwards. On a GPU
    the thread count is left alone: the GPU does the work."""
    if torch.device(device).type != "cpu":
        _train_and_cache(get_spec(name), profile, device)
        return name
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train_and_cache(get_spec(name), profile, device)
    finally:
        torch.set_num_threads(threads)
    return name


def _needs_training(name: str, profile: str) -> bool:
    if profile == "mini":
        return bool(check_committed(name, profile))
    return not checkpoint_files(name, profile)[0].is_file()


def train_zoo(names: list[str] | None = None, profile: str = "mini", workers: int = 2,
              device: str = "cpu") -> list[str]:
    """Train every model of ``names`` (default: all trained here) whose files are missing or mismatched.

    On the CPU, ``workers`` processes of one thread each train one model at a time, in the given
    order; on a GPU (``device="cuda"``) the models are trained one after another in this process,
    on the GPU (worker processes would compete for it). Each model resumes from its partial
    checkpoint when interrupted, and a finished model is never retrained. Returns the names trained.
    """
    import concurrent.futures
    import multiprocessing

    from tqdm.auto import tqdm

    names = list_models(source="trained") if names is None else names
    for name in names:
        if get_spec(name).source != "trained":
            raise ValueError(f"{name} is not trained by the study (source {get_spec(name).source!r})")
    todo = [n for n in names if _needs_training(n, profile)]
    if not todo:
        return []
    if workers <= 1 or len(todo) == 1 or torch.device(device).type != "cpu":
        for name in tqdm(todo, desc="zoo"):
            _train_in_worker(name, profile, device)
        return todo
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = {pool.submit(_train_in_worker, n, profile, device): n for n in todo}
        for job in tqdm(concurrent.futures.as_completed(jobs), total=len(jobs), desc=f"zoo ({workers} workers)"):
            print(f"zoo: {job.result()} done", flush=True)
    return todo


def ensure_trained(names: list[str], profile: str = "mini", workers: int = 2, device: str = "cpu") -> None:
    """Make sure every trained model of ``names`` is available.

    ``mini``: verify the committed zoo and raise :class:`ZooMismatch` listing every missing or
    mismatched model (never trains). ``smoke``/``paper``: train what is not cached yet.
    """
    names = [n for n in names if get_spec(n).source == "trained"]
    if profile == "mini":
        problems = {n: p for n in names if (p := check_committed(n, profile))}
        if problems:
            lines = "\n".join(f"  {n}: {'; '.join(p)}" for n, p in problems.items())
            raise ZooMismatch(f"the committed zoo ({zoo_dir(profile)}) does not match the registered models:\n"
                              f"{lines}\nretrain with `make zoo ONLY={','.join(problems)}`")
        return
    train_zoo(names, profile, workers, device)


def load(name: str, profile: str = "mini", device: str | torch.device = "cpu",
         train_if_missing: bool = True) -> Classifier:
    """A ready classifier in eval mode with frozen parameters (input RGB in [0, 1]).

    Trained models: in ``mini`` read from the committed zoo after checking it (see the module
    docstring; never trains); in ``smoke``/``paper`` trained on ``device`` on first use unless
    ``train_if_missing`` is False.
    """
    spec = get_spec(name)
    if spec.source == "trained":
        weights, _ = checkpoint_files(name, profile)
        if profile == "mini":
            problems = check_committed(name, profile)
            if problems:
                raise ZooMismatch(f"{name}: the committed zoo file does not match the registered model: "
                                  f"{'; '.join(problems)}; {_retrain_hint(name)}")
        if weights.is_file():
            model = Classifier(spec.build(), spec.config, name)
            try:
                model.net.load_state_dict(load_file(str(weights)))
            except RuntimeError as error:
                raise ZooMismatch(f"{name}: {weights} does not fit the registered architecture ({error}); "
                                  f"{_retrain_hint(name)}") from error
        elif train_if_missing:
            model = _train_and_cache(spec, profile, device)
        else:
            raise FileNotFoundError(f"{name} ({profile}) is not trained yet: {weights} is missing")
    elif spec.source == "cifar10":
        model = Classifier(cifar_resnet.pretrained(int(name.removeprefix("cifar10-resnet"))), spec.config, name)
    elif spec.source == "cifar10-robust":
        model = Classifier(robust_resnet.pretrained(name.removeprefix("cifar10-").removesuffix("-linf")),
                           spec.config, name)
    else:
        model = Classifier(_load_timm(spec), spec.config, name)
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    if torch.device(device).type == "cpu":
        eager_attention(model)   # timm's fused attention is the slower one on a CPU (same math)
    return model
