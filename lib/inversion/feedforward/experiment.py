"""The shared pipeline of notebooks 02-04 (Teterwak et al. 2021 at the mini scale).

:class:`Study` holds what every notebook needs in one profile and one data source: the real
training and evaluation images, the outside judge, the same-class chance reference, cached logits /
inverses per classifier, and -- for Fashion-Scenes, whose images come with ground-truth factors --
the factor probe with its ceiling. On CIFAR-10 (``dataset="cifar10"``) and ImageNet
(``dataset="imagenet"``, the paper's data, at ``image_size`` 128 or 64 px) there are no factors:
the probe is ``None`` and the scores are PSNR, SSIM, judge agreement and the thumbnail error.
Notebooks 02, 03 and 04 pass the *same* ``gan`` / ``decoder`` parameter dicts (their profile yaml files agree), so a generator trained in
02 is found in the cache (``<data>/checkpoints/<profile>/feedforward-<classifier>-<hash>.pt``,
keyed by the configuration and the classifier's weights) by 03 and 04.

The generator, the discriminator and the pixel decoder take as many logits as the classifier
gives (``ModelSpec.config.num_classes``: 10 for the zoo, 1000 for ImageNet), and make images of
the data's side. A classifier whose input side is not the data's (ImageNet models at 224 px fed
128 px images) is wrapped in :class:`~inversion.models.architectures.ResizedInput`, which
upsamples every image it is given -- real, generated or optimized -- to the model's input size
before normalizing; the judge too. Ten-class 32 px data keeps its cache keys.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

import pandas as pd
import torch

from ..data import cifar10, fashion_scenes, imagenet
from ..data.fashion_scenes import Scenes
from ..models import Classifier, get_spec, load
from ..models.architectures import fed_at
from ..models.training import predict_logits
from ..paths import checkpoint_dir, written_atomically
from .baselines import DecoderConfig, PixelDecoder, decoder_train_or_load
from .discriminator import DiscriminatorConfig
from .evaluate import chance_reference, judge_labels, per_image_scores, probe_ceiling, summarize
from .generator import GeneratorConfig
from .probe import FactorProbe, ProbeConfig, probe_train_or_load
from .train import FeedforwardConfig, TrainedInverse, classifier_key, train_or_load

DATASETS = ("fashion-scenes", "cifar10", "imagenet")
NATIVE_SIZE = {"fashion-scenes": 32, "cifar10": 32}   # datasets that come at one side only
DEFAULT_SIZE = {"imagenet": 128}                     # the paper's larger side (64 is the cheaper one)
RESIZE_VERSION = 1   # of ResizedInput (enters the logits cache key of resized data); bump when it changes


def gan_config(params: dict, logit_dim: int = 10, **overrides) -> FeedforwardConfig:
    """A :class:`FeedforwardConfig` from a notebook's plain ``gan`` dict (+ keyword overrides).

    Keys: ``steps, batch_size, lr, lr_d, betas, z_dim, embed_dim, g_widths, d_widths, d_downsample,
    ema_decay, n_dis, n_train, pixel_weight, logit_weight, checkpoint_every, seed, precision, channels_last``; missing keys
    keep the defaults of the dataclasses.
    """
    p = {**params, **overrides}
    g_widths = tuple(p.get("g_widths", GeneratorConfig.widths))
    image_size = p.get("image_size", 32)
    bottom = image_size // 2 ** (len(g_widths) - 1)
    if bottom * 2 ** (len(g_widths) - 1) != image_size:
        raise ValueError(f"{len(g_widths) - 1} up-blocks cannot make {image_size}x{image_size} images")
    g = GeneratorConfig(logit_dim=logit_dim, z_dim=p.get("z_dim", 64), embed_dim=p.get("embed_dim", 32),
                        widths=g_widths, bottom=bottom)
    d_widths = tuple(p.get("d_widths", DiscriminatorConfig.widths))
    d = DiscriminatorConfig(logit_dim=logit_dim, widths=d_widths,
                            downsample=tuple(p.get("d_downsample", [True] * len(d_widths))))
    lr = p.get("lr", 2e-4)
    return FeedforwardConfig(
        generator=g, discriminator=d, steps=p.get("steps", 1500), batch_size=p.get("batch_size", 64),
        lr_g=lr, lr_d=p.get("lr_d", lr), betas=tuple(float(b) for b in p.get("betas", (0.0, 0.999))),
        n_dis=p.get("n_dis", 1), ema_decay=p.get("ema_decay", 0.999), pixel_weight=p.get("pixel_weight", 0.0),
        logit_weight=p.get("logit_weight", 0.0), n_train=p.get("n_train"),
        checkpoint_every=p.get("checkpoint_every", 250), seed=p.get("seed", 0),
        precision=p.get("precision", "fp32"), channels_last=p.get("channels_last", False))


def decoder_config(params: dict, logit_dim: int = 10, image_size: int | None = None) -> DecoderConfig:
    """A :class:`DecoderConfig` from a notebook's plain ``decoder`` dict (``image_size``: the
    argument, else the dict's ``image_size``, else 32)."""
    return DecoderConfig(logit_dim=logit_dim, hidden=params.get("hidden", 256),
                         widths=tuple(params.get("widths", DecoderConfig.widths)),
                         image_size=image_size or params.get("image_size", 32),
                         steps=params.get("steps", 1500), batch_size=params.get("batch_size", 64),
                         lr=params.get("lr", 1e-3), n_train=params.get("n_train"), seed=params.get("seed", 0))


def probe_config(params: dict) -> ProbeConfig:
    """A :class:`ProbeConfig` from a notebook's plain ``probe`` dict."""
    return ProbeConfig(**{k: v for k, v in params.items() if k in {f.name for f in dataclasses.fields(ProbeConfig)}})


@dataclass
class Study:
    """Everything notebooks 02-04 share in one profile (build it with :meth:`Study.setup`)."""

    profile: str
    train: Scenes | cifar10.Cifar10 | imagenet.ImageNet   # real training images (the generators' and the probe's data)
    test: Scenes | cifar10.Cifar10 | imagenet.ImageNet    # held-out images the reconstructions are scored on
    probe: FactorProbe | None           # None where the images have no ground-truth factors
    probe_log: dict
    judge: Classifier                   # outside judge: a classifier that is never inverted
    chance: dict[str, float]            # errors of a random other test image of the same class
    ceiling: dict[str, float]           # the probe's own errors on the real test images
    device: str = "cpu"
    train_missing: bool = False         # train a zoo model that is not cached yet (smoke only)
    dataset: str = "fashion-scenes"
    image_size: int = 32                # side of the images (classifiers of another input side get them resized)
    _classifiers: dict = field(default_factory=dict, repr=False)
    _logits: dict = field(default_factory=dict, repr=False)
    _judge_labels: dict = field(default_factory=dict, repr=False)

    @staticmethod
    def setup(profile: str, n_train: int, n_eval: int, probe: dict | None = None, judge: str = "judge-vgg",
              device: str = "cpu", train_missing: bool = False, seed: int = 0,
              dataset: str = "fashion-scenes", image_size: int | None = None) -> "Study":
        """Load the images, the judge and (Fashion-Scenes with a ``probe`` dict) the cached factor probe.

        ``image_size``: the side of ImageNet images (default 128); Fashion-Scenes and CIFAR-10 come
        at 32 px only (None or 32).
        """
        if probe is not None and dataset != "fashion-scenes":
            raise ValueError(f"{dataset} images have no ground-truth factors to probe; pass probe=None")
        image_size = image_side(dataset, image_size)
        train, test = load_split(dataset, "train", n_train, image_size), load_split(dataset, "test", n_eval, image_size)
        factor_probe, log, ceiling = None, {}, {}
        if probe is not None:
            factor_probe, log = probe_train_or_load(train, profile, probe_config(probe), device)
            ceiling = probe_ceiling(factor_probe, test)
        judge_model = fed_at(load(judge, profile, device, train_if_missing=train_missing), image_size)
        return Study(profile, train, test, factor_probe, log, judge_model,
                     chance_reference(test, seed), ceiling, device, train_missing, dataset, image_size)

    def classifier(self, name: str) -> Classifier:
        """The frozen zoo classifier ``name``, fed this study's images (resized to its input side
        when that differs: :class:`~inversion.models.architectures.ResizedInput`)."""
        if name not in self._classifiers:
            model = load(name, self.profile, self.device, train_if_missing=self.train_missing)
            self._classifiers[name] = fed_at(model, self.image_size)
        return self._classifiers[name]

    @staticmethod
    def logit_dim(name: str) -> int:
        """Length of classifier ``name``'s logit vector (its registered number of classes)."""
        return get_spec(name).config.num_classes

    @property
    def n_classes(self) -> int:
        """Classes the judge tells apart (10, or 1000 on ImageNet)."""
        return self.judge.config.num_classes

    @property
    def chance_agreement(self) -> float:
        """Judge agreement of a reconstruction that carries no class information: 1 / classes
        (for a judge whose labels of the originals spread evenly over the classes)."""
        return 1 / self.n_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the judge's classes (the data's folder names where the judge has none)."""
        names = self.judge.config.class_names or getattr(self.test, "classes", ())
        return tuple(names) or tuple(str(i) for i in range(self.n_classes))

    def logits(self, name: str, split: str = "test") -> torch.Tensor:
        """The frozen classifier's logits of the train or test scenes (cached in memory and on disk)."""
        if (name, split) in self._logits:
            return self._logits[name, split]
        scenes = self.train if split == "train" else self.test
        path = _logits_path(name, self.profile, split, scenes, self.dataset, self.image_size)
        if path.is_file():
            logits = torch.load(path, weights_only=True)
        else:
            logits = predict_logits(self.classifier(name), scenes.images, device=self.device)
            with written_atomically(path) as tmp:
                torch.save(logits, tmp)
        self._logits[name, split] = logits
        return logits

    def gan(self, name: str, params: dict, **overrides) -> TrainedInverse:
        """The cached GAN inverse of zoo classifier ``name`` (trained, or resumed, on first use)."""
        config = self.generator_config(name, params, **overrides)
        path_exists = _gan_cached(name, self.profile, config)
        return train_or_load(self.classifier(name), name, self.profile, self.train.images, config, self.device,
                             logits=None if path_exists else self.logits(name, "train"))

    def train_generators(self, jobs: list[tuple[str, dict]], params: dict, workers: int = 1) -> None:
        """Train the not-yet-cached GAN inverses of ``jobs`` ((classifier, overrides) pairs); see
        :func:`train_generators`, which also pools the jobs of several studies."""
        train_generators([(self, name, overrides) for name, overrides in jobs], params, workers)

    def generator_config(self, name: str, params: dict, **overrides) -> FeedforwardConfig:
        """The :class:`FeedforwardConfig` of ``name``'s generator on this study's data: ``params``
        with ``overrides`` (see :func:`gan_config`), the classifier's logit length and the data's
        image side (a recipe that names another ``image_size`` is refused)."""
        asked = {**params, **overrides}.get("image_size", self.image_size)
        if asked != self.image_size:
            raise ValueError(f"the recipe asks for {asked} px images, the {self.dataset} data are {self.image_size} px")
        return gan_config(params, logit_dim=self.logit_dim(name), **{**self._with_data(overrides),
                                                                    "image_size": self.image_size})

    def decoder_config(self, name: str, params: dict) -> DecoderConfig:
        """The :class:`DecoderConfig` of ``name``'s pixel-loss decoder on this study's data."""
        return decoder_config(self._with_data(params), logit_dim=self.logit_dim(name), image_size=self.image_size)

    def _with_data(self, overrides: dict) -> dict:
        """``overrides`` plus what a generator's or decoder's cache key must know of the data beyond
        the classifier: Fashion-Scenes ones keep their keys; on other data the number of training
        images enters them (``overrides`` win)."""
        return overrides if self.dataset == "fashion-scenes" else {"n_train": len(self.train), **overrides}

    def decoder(self, name: str, params: dict) -> tuple[PixelDecoder, dict]:
        """The cached pixel-loss decoder (Dosovitskiy & Brox baseline) of zoo classifier ``name``."""
        return decoder_train_or_load(self.classifier(name), name, self.profile, self.train.images,
                                     self.decoder_config(name, params), self.device,
                                     logits=self.logits(name, "train"))

    def scores(self, recon: torch.Tensor, scenes: Scenes | None = None) -> pd.DataFrame:
        """Per-image PSNR, SSIM, judge agreement, thumbnail and factor errors of reconstructions of
        ``scenes`` (default: the first ``len(recon)`` test images)."""
        labels = None
        if scenes is None:   # the judge's labels of the first test images are computed once per prefix
            scenes = self.test.subset(slice(0, len(recon)))
            if len(recon) not in self._judge_labels:
                self._judge_labels[len(recon)] = judge_labels(self.judge, scenes, self.device)
            labels = self._judge_labels[len(recon)]
        return per_image_scores(recon, scenes, self.probe, self.judge, self.device, original_labels=labels)

    def summary(self, recon: torch.Tensor, scenes: Scenes | None = None, **labels) -> dict:
        """Mean scores (and errors / chance) of reconstructions, as one table row."""
        return {**labels, "n": len(recon), **summarize(self.scores(recon, scenes), self.chance)}


def train_generators(jobs: list[tuple[Study, str, dict]], params: dict, workers: int = 1) -> None:
    """Train the not-yet-cached GAN inverses of ``jobs`` ((study, classifier, overrides) triples).

    ``workers > 1``: that many single-threaded processes train one generator each at a time (on a
    small CPU two single-threaded trainings finish sooner than two consecutive two-threaded ones,
    as for the zoo); jobs of studies on different data share the pool, so no core idles while
    another study's last generator trains. Results are then read from the cache by :meth:`Study.gan`.
    """
    unique = {(id(st), n, json.dumps(o, sort_keys=True)): (st, n, o) for st, n, o in jobs}.values()
    missing = [(st, n, o) for st, n, o in unique if not _gan_cached(n, st.profile, st.generator_config(n, params, **o))]
    if workers <= 1 or len(missing) <= 1:
        for st, name, overrides in missing:
            st.gan(name, params, **overrides)
        return
    import concurrent.futures
    import multiprocessing

    from tqdm.auto import tqdm

    for st, name, _ in missing:  # the workers read the training logits from the disk cache
        st.logits(name, "train")
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(_train_generator_in_worker, n, st.profile, st.generator_config(n, params, **o),
                               len(st.train), st.device, st.dataset, st.image_size) for st, n, o in missing]
        for job in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                        desc=f"generators ({workers} workers)"):
            job.result()


def image_side(dataset: str, image_size: int | None = None) -> int:
    """The image side of ``dataset``: its only one (Fashion-Scenes, CIFAR-10: 32 px), or for
    ImageNet ``image_size`` (default 128)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, not {dataset!r}")
    if dataset in NATIVE_SIZE:
        if image_size not in (None, NATIVE_SIZE[dataset]):
            raise ValueError(f"{dataset} images are {NATIVE_SIZE[dataset]} px, not {image_size}")
        return NATIVE_SIZE[dataset]
    return int(image_size or DEFAULT_SIZE[dataset])


def load_split(dataset: str, split: str, n: int | None, image_size: int | None = None):
    """``n`` images of one split of a data source of :data:`DATASETS` (a seeded subset).

    ImageNet: ``train``, or ``test`` (the validation folder), at ``image_size`` (default 128), uint8.
    """
    size = image_side(dataset, image_size)
    if dataset == "fashion-scenes":
        return fashion_scenes.load(split, n=n)
    if dataset == "cifar10":
        return cifar10.load(split, n=n)
    return imagenet.load(split, n=n, size=size)


def _logits_path(name: str, profile: str, split: str, data, dataset: str = "fashion-scenes",
                 image_size: int | None = None):
    identity = {"classifier": classifier_key(name, profile), "split": split, "n": len(data),
                "labels": hashlib.sha256(data.labels.numpy().tobytes()).hexdigest()}
    if dataset == "fashion-scenes":
        identity["recipe"] = dataclasses.asdict(data.recipe)
    else:
        identity.update(dataset=dataset, source=data.source)
    config = get_spec(name).config
    if image_size is not None and config.input_size[-1] != image_size:   # fed through ResizedInput
        identity["resized"] = {"from": image_size, "to": list(config.input_size),
                               "interpolation": config.interpolation, "version": RESIZE_VERSION}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return checkpoint_dir(profile) / f"logits-{name}-{split}-{key}.pt"


def _train_generator_in_worker(name: str, profile: str, config: FeedforwardConfig, n_train: int,
                               device: str, dataset: str = "fashion-scenes", image_size: int | None = None) -> str:
    torch.set_num_threads(1)
    train = load_split(dataset, "train", n_train, image_size)
    image_size = image_side(dataset, image_size)
    classifier = fed_at(load(name, profile, device, train_if_missing=False), image_size)
    logits = torch.load(_logits_path(name, profile, "train", train, dataset, image_size), weights_only=True)
    train_or_load(classifier, name, profile, train.images, config, device, logits=logits)
    return name


def _gan_cached(name: str, profile: str, config: FeedforwardConfig) -> bool:
    from .train import cache_path

    path = cache_path("feedforward", name, profile, config)
    if not path.is_file():
        return False
    return torch.load(path, map_location="cpu", weights_only=False)["step"] >= config.steps


def describe(params: dict) -> str:
    """A short name of a ``gan`` recipe: which losses train G, how long, how wide."""
    terms = ["GAN (hinge)"]
    if params.get("pixel_weight"):
        terms.append(f"pixel x{params['pixel_weight']:g}")
    if params.get("logit_weight"):
        terms.append(f"logit x{params['logit_weight']:g}")
    return f"{' + '.join(terms)}, {params.get('steps')} steps of {params.get('batch_size')}"
