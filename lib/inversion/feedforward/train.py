"""GAN training of feedforward inversion (Teterwak et al. 2021, Sec. 3): only G and D learn.

The frozen classifier ``f`` turns each real image ``x`` into its logits ``y = f(x)`` (computed
once); the generator learns ``G(y, z) ~ x`` from the hinge GAN game with the projection
discriminator ``D(x, y)``::

    L_D = E[max(0, 1 - D(x, y))] + E[max(0, 1 + D(G(y, z), y))]
    L_G = -E[D(G(y, z), y)]  (+ pixel_weight * ||G(y, z) - x||^2 + logit_weight * ||f(G(y, z)) - y||^2)

The two reconstruction terms are off by default, as in the paper. Adam (lr 2e-4, betas (0, 0.999)),
an exponential moving average of G's weights (the EMA generator is the one used for inversion),
checkpoints every ``checkpoint_every`` steps that resume bit-for-bit after an interruption
(weights, optimizer states and the sampler's random state are saved), and a cache keyed by the
hash of the configuration and of the classifier's checkpoint, so later notebooks reuse a trained
generator. Device-agnostic: batches are drawn with a CPU generator (the same draws on every device)
and moved to the device; the losses reach the host every ``LOG_EVERY`` steps.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import precision as precision_switch
from ..models.training import predict_logits
from ..paths import checkpoint_dir, written_atomically
from .discriminator import DiscriminatorConfig, ProjectionDiscriminator
from .generator import GeneratorConfig, LogitConditionedGenerator
from .losses import hinge_d_loss, hinge_g_loss, logit_reconstruction_loss, pixel_loss


LOG_EVERY = 50   # steps between copies of the losses to the host (one sync per 50 steps, not 3 per step)


@dataclass(frozen=True)
class FeedforwardConfig:
    """Everything that determines a trained inverse generator (its hash names the checkpoint)."""

    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    steps: int = 1500               # generator updates
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.999)
    n_dis: int = 1                  # discriminator updates per generator update
    ema_decay: float = 0.999        # EMA of G's weights (warm-up: min(decay, (1+t)/(10+t)))
    pixel_weight: float = 0.0       # optional pixel reconstruction term (off in the paper)
    logit_weight: float = 0.0       # optional classifier-feature (logit) reconstruction term
    n_train: int | None = 20000     # real training images (a seeded subset; None: all)
    checkpoint_every: int = 250
    seed: int = 0
    precision: str = "fp32"         # "fp32" | "bf16": autocast of G's, D's and f's forward passes
    channels_last: bool = False     # NHWC memory for G, D and the real batches

    def __post_init__(self):
        precision_switch.check(self.precision)

    def key(self) -> str:
        blob = json.dumps(precision_switch.cache_fields(dataclasses.asdict(self)), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class TrainedInverse:
    """A trained feedforward inverse: the EMA generator (eval mode) plus its training record."""

    generator: LogitConditionedGenerator
    config: FeedforwardConfig
    log: dict = field(default_factory=dict)
    discriminator: ProjectionDiscriminator | None = None

    @torch.no_grad()
    def invert(self, logits: torch.Tensor, z: torch.Tensor | None = None, seed: int = 0,
               batch_size: int = 500) -> torch.Tensor:
        """Reconstructions ``G(logits, z)`` in [0, 1]; ``z`` seeded from ``seed`` when not given."""
        g = self.generator.eval()
        device = g.logit_std.device
        if z is None:
            z = g.sample_noise(len(logits), torch.Generator().manual_seed(seed), "cpu")
        out = [g(logits[i:i + batch_size].to(device), z[i:i + batch_size].to(device)).cpu()
               for i in range(0, len(logits), batch_size)]
        return torch.cat(out)


def parameter_fingerprint(module: nn.Module) -> str:
    """SHA-256 of all parameters and buffers: proves a module was not changed by training."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def assert_frozen(classifier: nn.Module) -> None:
    """The classifier must be in eval mode with no trainable parameter (only G and D train)."""
    if classifier.training:
        raise AssertionError("the classifier must be in eval mode (feedforward inversion keeps it frozen)")
    trainable = [n for n, p in classifier.named_parameters() if p.requires_grad]
    if trainable:
        raise AssertionError(f"the classifier must be frozen; trainable parameters: {trainable[:3]}...")


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p, 1 - decay)
        for be, b in zip(ema.buffers(), model.buffers()):
            be.copy_(b)


def _load_complete(path: Path, config: FeedforwardConfig, fingerprint: str,
                   device: torch.device) -> TrainedInverse | None:
    """A finished checkpoint as a :class:`TrainedInverse` (None if absent or unfinished)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    if state["config_key"] != config.key():
        raise ValueError(f"checkpoint {path} was written by another configuration")
    if state["step"] < config.steps:
        return None
    if state.get("classifier_fingerprint") not in (None, fingerprint):
        raise ValueError(f"checkpoint {path} inverts a classifier with other weights")
    D, G_ema = ProjectionDiscriminator(config.discriminator).to(device), LogitConditionedGenerator(config.generator).to(device)
    D.load_state_dict(state["D"]), G_ema.load_state_dict(state["G_ema"])
    log = dict(state["log"], steps_done=state["step"])
    return TrainedInverse(G_ema.eval(), config, log, discriminator=D.eval())


def training_pairs(classifier: nn.Module, images: torch.Tensor, logits: torch.Tensor | None, n_train: int | None,
                   seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """The (image, logits) pairs an inverse trains on, and the seeded CPU sampler that drew them.

    Seeds torch with ``seed``; keeps ``n_train`` images of a seeded permutation (all when None or
    larger); ``logits`` (optional) are the classifier's logits of exactly ``images``, computed when
    not given. Returns the images, their logits (float32 on the CPU) and the sampler, which the
    training loop goes on drawing batches from.
    """
    if logits is not None and len(logits) != len(images):
        raise ValueError(f"got {len(logits)} logit vectors for {len(images)} images")
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    if n_train is not None and n_train < len(images):
        subset = torch.randperm(len(images), generator=rng)[:n_train]
        images, logits = images[subset], None if logits is None else logits[subset]
    if logits is None:
        logits = predict_logits(classifier, images, device=device)
    return images, logits.float().cpu(), rng


def train_step(G: LogitConditionedGenerator, D: ProjectionDiscriminator, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, images: torch.Tensor, logits: torch.Tensor, rng: torch.Generator,
               c: FeedforwardConfig, classifier: nn.Module | None = None,
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One generator update after ``c.n_dis`` discriminator updates (hinge losses), batches drawn
    from uint8 ``images`` and their ``logits`` with ``rng``; the forward passes run under
    ``c.precision``. Returns the last D loss, the G loss and the reconstruction term."""
    dev = torch.device(device)
    cast = lambda: precision_switch.autocast(c.precision, dev)  # noqa: E731
    for _ in range(c.n_dis):  # --- discriminator: hinge loss on real vs generated
        idx = torch.randint(0, len(images), (c.batch_size,), generator=rng)
        x = precision_switch.to_memory_format(images[idx].float().div(255).to(dev), c.channels_last)
        y = logits[idx].to(dev)
        z = torch.randn(c.batch_size, c.generator.z_dim, generator=rng).to(dev)
        with torch.no_grad(), cast():
            fake = G(y, z)
        with cast():
            d_real, d_fake = D(x, y), D(fake, y)
        d_loss = hinge_d_loss(d_real.float(), d_fake.float())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    z = torch.randn(c.batch_size, c.generator.z_dim, generator=rng).to(dev)  # --- generator
    with cast():
        fake = G(y, z)
        d_fake = D(fake, y)
    g_loss = hinge_g_loss(d_fake.float())
    fake = fake.float()
    recon = torch.zeros((), device=dev)
    if c.pixel_weight:
        recon = recon + c.pixel_weight * pixel_loss(fake, x)
    if c.logit_weight:
        with cast():
            recon = recon + c.logit_weight * logit_reconstruction_loss(classifier, fake, y).float()
    opt_g.zero_grad(set_to_none=True)
    (g_loss + recon).backward()
    opt_g.step()
    return d_loss, g_loss, recon


def train_logit_inverse(classifier: nn.Module, images: torch.Tensor, config: FeedforwardConfig = FeedforwardConfig(),
                  checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
                  desc: str = "train G", stop_after: int | None = None,
                  logits: torch.Tensor | None = None) -> TrainedInverse:
    """Train a logit-conditioned generator to invert a frozen ``classifier`` (input RGB in [0, 1]).

    ``images``: uint8 (N, 3, S, S) real training images; ``logits``: optionally the classifier's
    logits of exactly these images (saves recomputing them). ``checkpoint``: a file that is written
    every ``config.checkpoint_every`` steps and at the end; if it exists, training resumes from it
    (and a finished one is loaded at once, without touching the images). ``stop_after`` stops early
    after that many total steps (simulates an interruption; used by the tests).
    """
    assert_frozen(classifier)
    fingerprint = parameter_fingerprint(classifier)
    c, dev = config, torch.device(device)
    path = Path(checkpoint) if checkpoint else None
    if path is not None and stop_after is None:
        done = _load_complete(path, c, fingerprint, dev)
        if done is not None:
            return done
    images, logits, rng = training_pairs(classifier, images, logits, c.n_train, c.seed, dev)
    if c.generator.logit_dim not in (None, 0) and c.generator.logit_dim != logits.shape[1]:
        raise ValueError(f"generator expects {c.generator.logit_dim} logits, the classifier gives {logits.shape[1]}")
    G = precision_switch.to_memory_format(LogitConditionedGenerator(c.generator).to(dev), c.channels_last)
    D = precision_switch.to_memory_format(ProjectionDiscriminator(c.discriminator).to(dev), c.channels_last)
    G.set_logit_statistics(logits.to(dev)), D.set_logit_statistics(logits.to(dev))
    G_ema = copy.deepcopy(G)
    opt_g = torch.optim.Adam(G.parameters(), lr=c.lr_g, betas=c.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=c.lr_d, betas=c.betas)
    log = {"d_loss": [], "g_loss": [], "recon_loss": [], "seconds": 0.0}
    step = 0
    if path is not None and path.is_file():
        state = torch.load(path, map_location=dev, weights_only=False)
        if state["config_key"] != c.key():
            raise ValueError(f"checkpoint {path} was written by another configuration")
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"]), G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        rng.set_state(state["rng"])
        step, log = state["step"], state["log"]

    def save():
        if path is not None:
            with written_atomically(path) as tmp:
                torch.save({"config_key": c.key(), "config": dataclasses.asdict(c), "step": step, "G": G.state_dict(),
                            "D": D.state_dict(), "G_ema": G_ema.state_dict(), "opt_g": opt_g.state_dict(),
                            "opt_d": opt_d.state_dict(), "rng": rng.get_state(), "log": log,
                            "classifier": getattr(classifier, "name", ""), "classifier_fingerprint": fingerprint}, tmp)

    end = c.steps if stop_after is None else min(c.steps, stop_after)
    G.train(), D.train()
    start, pending = time.time(), []
    with tqdm(total=c.steps, initial=step, desc=desc, leave=False) as bar:
        while step < end:
            d_loss, g_loss, recon = train_step(G, D, opt_g, opt_d, images, logits, rng, c, classifier, dev)
            step += 1
            _ema_update(G_ema, G, min(c.ema_decay, (1 + step) / (10 + step)))
            pending.append(torch.stack([d_loss.detach(), g_loss.detach(), recon.detach()]).float())
            bar.update()
            checkpoint_now = step % c.checkpoint_every == 0 or step == end
            if step % LOG_EVERY == 0 or checkpoint_now:   # the losses reach the host every LOG_EVERY steps
                for row in torch.stack(pending).tolist():
                    log["d_loss"].append(row[0]), log["g_loss"].append(row[1]), log["recon_loss"].append(row[2])
                pending = []
            if step % LOG_EVERY == 0:
                bar.set_postfix(d=f"{sum(log['d_loss'][-LOG_EVERY:]) / LOG_EVERY:.3f}",
                                g=f"{sum(log['g_loss'][-LOG_EVERY:]) / LOG_EVERY:.3f}")
            if checkpoint_now:
                log["seconds"] += time.time() - start
                start = time.time()
                save()
    if parameter_fingerprint(classifier) != fingerprint:
        raise AssertionError("the classifier changed during generator training; it must stay frozen")
    log["steps_done"] = step
    return TrainedInverse(G_ema.eval(), c, log, discriminator=D.eval())


def classifier_key(classifier_name: str, profile: str) -> str:
    """Identity of a zoo classifier's weights (``<name>-<recipe hash>``), so a retrained classifier
    gets a new generator."""
    from ..models import get_spec
    from ..models.zoo import weights_key

    if get_spec(classifier_name).source == "trained":
        return weights_key(classifier_name, profile)
    return classifier_name


def cache_path(kind: str, classifier_name: str, profile: str, config) -> Path:
    """``<data>/checkpoints/<profile>/<kind>-<classifier>-<hash(config, classifier weights)>.pt``."""
    blob = json.dumps({"config": dataclasses.asdict(config), "classifier": classifier_key(classifier_name, profile)},
                      sort_keys=True)
    return checkpoint_dir(profile) / f"{kind}-{classifier_name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}.pt"


def train_or_load(classifier: nn.Module, classifier_name: str, profile: str, images: torch.Tensor,
                  config: FeedforwardConfig = FeedforwardConfig(), device: str | torch.device = "cpu",
                  logits: torch.Tensor | None = None) -> TrainedInverse:
    """The cached inverse generator of a zoo classifier (trained, or resumed, on first use)."""
    path = cache_path("feedforward", classifier_name, profile, config)
    return train_logit_inverse(classifier, images, config, checkpoint=path, device=device,
                         desc=f"GAN inverse of {classifier_name}", logits=logits)
