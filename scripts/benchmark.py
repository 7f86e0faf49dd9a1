"""Time every training / inversion loop of the study in fp32, bf16, channels_last and both, side by side.

For each loop (zoo training step per architecture, PII step per inverted model, DeepDream and
DeepInversion step, logit-GAN step, zero-shot inverse step, SNGAN step) this script imports the
loop's own step code, builds it at the mini profile's batch shape and prints, per precision setting:

* ``step_s`` - median seconds per step, and ``speedup`` = fp32 step / this step;
* ``floor_s`` - median seconds of the bare forward + backward of the same model(s) and batch in the
  same setting (no sampling, transforms or optimizer), and ``overhead`` = step / floor;
* the thread layout (fp32): ``two_threads`` = 1-thread step / 2-thread step in one process, and
  ``two_processes`` = throughput of two concurrent one-thread processes / one 1-thread process
  (the zoo trains two models at a time with one thread each; notebooks run one process on 2
  threads), and ``processes_over_threads`` = their ratio.

Then PII per inverted image over its whole zoom schedule: the legacy mode (one class per run, fp32,
every stage upsampled) against the study's batched modes, on 1 and on 2 threads, and with
``--pii-quality`` also the mini profile's full schedule judged by the other CIFAR-10 ResNets
(cross-model top-1 with a 95% bootstrap interval over 3 seeds x 10 classes).

Trained zoo models are used where ``make zoo`` has cached them, randomly initialised ones
otherwise (timings do not depend on the weights); the real CIFAR-10 ResNets are always real.
Timings depend on the machine and its load: read ratios taken in one run, not absolute seconds.

    .venv/bin/python scripts/benchmark.py                       # 2-4 min on 2 cores
    .venv/bin/python scripts/benchmark.py --only pii --pii-quality
    .venv/bin/python scripts/benchmark.py --only deepinversion --no-layout --baseline-quality
"""
from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from inversion import class_inversion as ci, reproduce
from inversion.class_inversion.benchmark import modes_side_by_side
from inversion.feedforward.experiment import gan_config
from inversion.feedforward.generator import LogitConditionedGenerator
from inversion.feedforward.discriminator import ProjectionDiscriminator
from inversion.feedforward.losses import hinge_d_loss, hinge_g_loss
from inversion.feedforward.train import train_step as gan_train_step
from inversion.models import Classifier, get_spec, load
from inversion.models.training import Recipe, batch_loss
from inversion.precision import autocast, channels_last_during, eager_attention, to_memory_format
from inversion.zeroshot import gan as sngan
from inversion.zeroshot.inverse import InverseChain
from inversion.zeroshot.losses import zero_shot_loss
from inversion.zeroshot.split import split

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "channels_last": ("fp32", True),
            "bf16+channels_last": ("bf16", True)}
LOOPS = ("zoo", "pii", "deepinversion", "logit_gan", "zeroshot", "sngan")


def mini(notebook: str) -> dict:
    return reproduce.parameters(notebook, "mini")


@dataclass
class Case:
    """One loop at one model: ``build(precision, channels_last) -> (step, floor)`` callables."""

    loop: str
    model: str
    batch: int
    weights: str
    build: Callable[[str, bool], tuple[Callable[[], None], Callable[[], None]]]


def classifier(name: str) -> tuple[Classifier, str]:
    """A frozen classifier: the cached mini checkpoint or the real CIFAR ResNet, else random weights."""
    spec = get_spec(name)
    try:
        return load(name, "mini", train_if_missing=False), "trained" if spec.source == "trained" else "pretrained"
    except Exception:  # not trained here yet (or the zoo's files changed): random weights time the same
        if spec.source != "trained":
            raise
        torch.manual_seed(0)
        model = Classifier(spec.build(), spec.config, name).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model, "random"


# --- the loops ------------------------------------------------------------------------------------
def zoo_case(name: str) -> Case:
    recipe = Recipe()
    spec = get_spec(name)

    def build(precision, channels_last):
        torch.manual_seed(0)
        model = to_memory_format(Classifier(spec.build(), spec.config, name), channels_last).train()
        eager_attention(model)   # as models.training.train does on a CPU
        g = torch.Generator().manual_seed(0)
        x = to_memory_format(torch.rand(recipe.batch_size, 3, 32, 32, generator=g), channels_last)
        y = torch.randint(0, 10, (recipe.batch_size,), generator=g)
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

        def step():
            with autocast(precision):
                loss = batch_loss(model, x, y, recipe, g)
            opt.zero_grad(set_to_none=True)
            loss.float().backward()
            opt.step()

        def floor():
            with autocast(precision):
                loss = F.cross_entropy(model(x), y)
            loss.float().backward()
            model.zero_grad(set_to_none=True)
        return step, floor
    return Case("zoo training step", name, recipe.batch_size, "random", build)


def pii_case(name: str, p01: dict, steps: int = 3) -> Case:
    model, weights = classifier(name)
    targets = torch.arange(len(p01["classes"]))
    batch = len(targets) * p01["copies"]

    def build(precision, channels_last):
        # the last zoom stage (full size): one stage of `steps` steps, per-step time = run / steps
        config = ci.PIIConfig(stages=1, steps_per_stage=steps, copies=p01["copies"], lr=p01["lr"],
                              color_shift=p01["color_shift"], precision=precision, channels_last=channels_last)

        def step():
            ci.invert(model, targets, config, seed=0, progress=False)
        return step, input_floor(model, batch, precision, channels_last)
    return Case("PII step (32 px stage)", name, batch, weights, _per_step(build, steps))


def _per_step(build, steps: int):
    """Wrap a builder whose step callable runs ``steps`` steps, so timings come out per step."""
    def wrapped(precision, channels_last):
        run, floor = build(precision, channels_last)
        run.steps = steps
        return run, floor
    return wrapped


def input_floor(model: nn.Module, batch: int, precision: str, channels_last: bool) -> Callable[[], None]:
    """Bare forward + cross-entropy + backward to the input (what one inversion step cannot avoid)."""
    size = model.input_size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).requires_grad_(True)
    y = torch.arange(batch) % 10

    def floor():
        with channels_last_during(model, channels_last):
            with autocast(precision):
                logits = model(to_memory_format(x, channels_last))
            F.cross_entropy(logits.float(), y).backward()
        x.grad = None
    return floor


def baseline_case(method: str, name: str, p01: dict, steps: int = 3) -> Case:
    """DeepDream or DeepInversion at notebook 01's batch. Both run the same loop; DeepInversion
    adds the BatchNorm-statistics term (moments of every BatchNorm input and their backward),
    which is the method's own compute, not loop overhead: DeepDream's overhead is the loop's."""
    model, weights = classifier(name)
    targets = torch.tensor(p01["classes"]).repeat(p01["images_per_class"])   # notebook 01's batch
    common = dict(steps=steps, lr=p01["baseline_lr"], tv_weight=p01["deepdream_tv"], l2_weight=p01["deepdream_l2"])
    cls, extra = ((ci.DeepInversionConfig, {"bn_weight": p01["deepinversion_bn"]}) if method == "DeepInversion"
                  else (ci.DeepDreamConfig, {}))

    def build(precision, channels_last):
        config = cls(**common, **extra, precision=precision, channels_last=channels_last)

        def step():
            ci.invert(model, targets, config, seed=0, progress=False)
        return step, input_floor(model, len(targets), precision, channels_last)
    return Case(f"{method} step", name, len(targets), weights, _per_step(build, steps))


def logit_gan_case() -> Case:
    p02 = mini("02_feedforward_inversion")

    def build(precision, channels_last):
        c = gan_config(p02["gan"], precision=precision, channels_last=channels_last)
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8, generator=g)
        logits = torch.randn(512, 10, generator=g) * 3
        G = to_memory_format(LogitConditionedGenerator(c.generator), channels_last).train()
        D = to_memory_format(ProjectionDiscriminator(c.discriminator), channels_last).train()
        G.set_logit_statistics(logits), D.set_logit_statistics(logits)
        opt_g = torch.optim.Adam(G.parameters(), lr=c.lr_g, betas=c.betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=c.lr_d, betas=c.betas)
        x, y = images[:c.batch_size].float() / 255, logits[:c.batch_size]
        z = torch.randn(c.batch_size, c.generator.z_dim, generator=g)

        def step():
            gan_train_step(G, D, opt_g, opt_d, images, logits, g, c)

        def floor():  # n_dis D passes on real and fake, one G+D pass, no sampling or optimizer
            for _ in range(c.n_dis):
                with torch.no_grad(), autocast(precision):
                    fake = G(y, z)
                with autocast(precision):
                    d = hinge_d_loss(D(x, y).float(), D(fake, y).float())
                d.backward()
            with autocast(precision):
                gl = hinge_g_loss(D(G(y, z), y).float())
            gl.backward()
            G.zero_grad(set_to_none=True), D.zero_grad(set_to_none=True)
        return step, floor
    return Case("logit-GAN step (G + n_dis D)", "gan-02", p02["gan"]["batch_size"], "random", build)


def zeroshot_case() -> Case:
    p05 = mini("05_zero_shot_inversion")
    model, weights = classifier(p05["cifar_model"])
    cuts = p05["cifar_cuts"]
    batch = int(p05.get("batch_size", 32))

    def build(precision, channels_last):
        chain = split(model, cuts).eval()
        to_memory_format(chain, channels_last)
        torch.manual_seed(0)
        inverse = to_memory_format(InverseChain(chain.shapes), channels_last).train()
        opt = torch.optim.Adam(inverse.parameters(), lr=2e-3, betas=(0.9, 0.99))
        g = torch.Generator().manual_seed(0)
        x0 = to_memory_format(torch.rand(batch, 3, 32, 32, generator=g), channels_last)
        depth = len(cuts)

        def loss_of(x):
            with torch.no_grad(), autocast(precision):
                hs = chain.activations(x, depth)
            with autocast(precision):
                loss, _ = zero_shot_loss(chain, inverse, hs, depth)
            return loss.float()

        def step():
            x = to_memory_format(torch.rand(batch, 3, 32, 32, generator=g), channels_last)
            loss = loss_of(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def floor():
            loss_of(x0).backward()
            inverse.zero_grad(set_to_none=True)
        return step, floor
    return Case("zero-shot inverse step", f"{p05['cifar_model']} {'/'.join(cuts)}", batch, weights, build)


def sngan_case() -> Case:
    p06 = mini("06_gan_inversion_and_repair")
    config = sngan.GANConfig(g_width=p06["g_width"], d_width=p06["d_width"], batch_size=p06["gan_batch"])

    def build(precision, channels_last):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        setting = dataclasses.replace(config, precision=precision, channels_last=channels_last)
        G = to_memory_format(sngan.Generator(config.latent_dim, config.g_width), channels_last)
        D = to_memory_format(sngan.Discriminator(config.d_width), channels_last)
        opt_g = torch.optim.Adam(G.parameters(), config.lr_g, betas=(0.0, 0.9))
        opt_d = torch.optim.Adam(D.parameters(), config.lr_d, betas=(0.0, 0.9))
        images = torch.rand(512, 3, 32, 32, generator=g)
        z0 = torch.randn(config.batch_size, config.latent_dim, generator=g)

        def step():  # zeroshot.gan.train_gan's loop body
            sngan.train_step(G, D, opt_g, opt_d, images[torch.randint(len(images), (config.batch_size,), generator=g)],
                             setting, g)

        real0 = to_memory_format(images[:config.batch_size], channels_last)

        def floor():   # the same forward and backward passes, without sampling or optimizer steps
            with torch.no_grad(), autocast(precision):
                fake = G(z0)
            with autocast(precision):
                loss_d = hinge_d_loss(D(real0).float(), D(fake).float())
            loss_d.backward()
            with autocast(precision):
                loss_g = -D(G(z0)).float().mean()
            loss_g.backward()
            G.zero_grad(set_to_none=True), D.zero_grad(set_to_none=True)
        return step, floor
    return Case("SNGAN step (06)", f"g{config.g_width}/d{config.d_width}", config.batch_size, "random", build)


def build_cases(only: list[str]) -> list[Case]:
    p01 = mini("01_pii_across_architectures")
    cases = []
    if "zoo" in only:
        cases += [zoo_case(n) for n in ("cnn", "vit", "mlp", "judge-vgg")]
    if "pii" in only:
        cases += [pii_case(n, p01) for n in p01["inverted_models"] if n != "cnn-robust"]
    if "deepinversion" in only:
        cases += [baseline_case(m, "cifar10-resnet20", p01) for m in ("DeepDream", "DeepInversion")]
    if "logit_gan" in only:
        cases.append(logit_gan_case())
    if "zeroshot" in only:
        cases.append(zeroshot_case())
    if "sngan" in only:
        cases.append(sngan_case())
    return cases


# --- timing -----------------------------------------------------------------------------------------
def seconds_per_call(fn: Callable[[], None], repeats: int, warmup: int = 1) -> float:
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) / getattr(fn, "steps", 1)


def time_case(case: Case, setting: str, repeats: int) -> tuple[float, float]:
    step, floor = case.build(*SETTINGS[setting])
    return seconds_per_call(step, repeats), seconds_per_call(floor, repeats)


def _worker(only, repeats, barrier, queue, rank):
    torch.set_num_threads(1)
    for i, case in enumerate(build_cases(only)):
        step, _ = case.build("fp32", False)
        step()  # warm-up before the two processes start together
        barrier.wait()
        queue.put((rank, i, seconds_per_call(step, repeats, warmup=0)))


def two_processes(only: list[str], repeats: int) -> dict[int, float]:
    """Per-step seconds of each case while two one-thread processes run it at the same time."""
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(only, repeats, barrier, queue, r)) for r in range(2)]
    for p in procs:
        p.start()
    n = len(build_cases(only))
    out: dict[int, list[float]] = {}
    for _ in range(2 * n):
        _, i, seconds = queue.get()
        out.setdefault(i, []).append(seconds)
    for p in procs:
        p.join()
    return {i: statistics.mean(v) for i, v in out.items()}


def attention_forms(repeats: int, batch: int = 80) -> pd.DataFrame:
    """The CIFAR-10 ViT's bare forward + backward (input gradient, PII's shape) with timm's fused
    attention (PyTorch's ``scaled_dot_product_attention``) and its eager form, in fp32 and bf16."""
    model, weights = classifier("cifar10-vit")
    blocks = [m for m in model.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    x = torch.rand(batch, *model.config.input_size, generator=torch.Generator().manual_seed(0))
    rows = []
    for precision in ("fp32", "bf16"):
        for fused in (True, False):
            for m in blocks:
                m.fused_attn = fused

            def step(precision=precision):
                xi = x.clone().requires_grad_(True)
                with autocast(precision):
                    out = model(xi)
                out.float().sum().backward()
            rows.append({"model": "cifar10-vit", "weights": weights, "batch": batch, "precision": precision,
                         "attention": "fused" if fused else "eager", "step_s": seconds_per_call(step, repeats)})
    for m in blocks:
        m.fused_attn = False   # what inversion.models.load sets on a CPU
    table = pd.DataFrame(rows)
    table["speedup_vs_fp32_fused"] = table["step_s"].iloc[0] / table["step_s"]
    return table


def pii_per_image(threads: list[int], quality: bool, name: str = "cifar10-resnet20") -> pd.DataFrame:
    """Legacy mode vs the study's modes, seconds per inverted image of ``name``, side by side.

    Judged by the three deeper real CIFAR ResNets (never the inverted model). bf16 is paired with
    channels_last for CNNs only, as in notebook 01's profile.
    """
    p01 = mini("01_pii_across_architectures")
    model, _ = classifier(name)
    judges = {n: classifier(n)[0] for n in ("cifar10-resnet32", "cifar10-resnet44", "cifar10-resnet56") if n != name}
    steps = p01["steps_per_stage"] if quality else 3
    base = ci.PIIConfig(stages=p01["stages"], steps_per_stage=steps, copies=p01["copies"], lr=p01["lr"],
                        color_shift=p01["color_shift"])
    cnn = get_spec(name).family == "cnn"
    bf16 = ci.with_overrides(base, precision="bf16")
    modes = {"legacy (1 class/run, fp32, upsampled)": ci.legacy_mode(base)}
    if cnn and not quality:   # a fixed-size model is always upsampled
        modes["batched, upsampled, fp32"] = ci.with_overrides(base, stage_input="upsample")
    modes["batched, auto stage input, fp32"] = base
    if not (cnn and quality):
        modes["batched, auto stage input, bf16"] = bf16
    if cnn:                   # channels_last means nothing to a ViT or an MLP-Mixer
        modes["batched, auto stage input, bf16+channels_last"] = ci.with_overrides(bf16, channels_last=True)
    rows = []
    for t in threads:
        part = pd.DataFrame(modes_side_by_side(model, modes, judges, torch.arange(len(p01["classes"])),
                                               seeds=[0, 1, 2] if quality else [0], threads=t))
        part["speedup_vs_legacy"] = part["seconds_per_image"].iloc[0] / part["seconds_per_image"]
        rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    out.insert(0, "inverted", name)
    out.insert(2, "steps_per_image", base.total_steps)
    return out


def baselines_per_image(threads: int, names=("cifar10-resnet20", "cifar10-vit", "cifar10-mixer")) -> pd.DataFrame:
    """DeepDream and DeepInversion at notebook 01's mini schedule and batch, fp32 against the
    profile's per-family speed switch (the one its PII uses), judged by the real CIFAR ResNets
    not inverted (cross-model top-1 with a 95% bootstrap interval over 3 seeds x the batch)."""
    p01 = mini("01_pii_across_architectures")
    judges = {n: classifier(n)[0] for n in ("cifar10-resnet32", "cifar10-resnet44", "cifar10-resnet56")}
    targets = torch.tensor(p01["classes"]).repeat(p01["images_per_class"])
    steps = p01["stages"] * p01["steps_per_stage"]
    common = dict(steps=steps, lr=p01["baseline_lr"], tv_weight=p01["deepdream_tv"], l2_weight=p01["deepdream_l2"])
    parts = []
    for name in names:
        model, _ = classifier(name)
        family = get_spec(name).family
        methods = {"DeepDream": ci.DeepDreamConfig(**common)}
        if ci.BatchNormStatistics.layers(model):
            methods["DeepInversion"] = ci.DeepInversionConfig(**common, bn_weight=p01["deepinversion_bn"])
        modes = {}
        for method, config in methods.items():
            fast = ci.with_speed(config, family, p01["precision"], p01["channels_last"])
            modes[f"{method}, fp32"] = config
            modes[f"{method}, {fast.precision}{'+channels_last' if fast.channels_last else ''}"] = fast
        part = pd.DataFrame(modes_side_by_side(model, modes, judges, targets, seeds=[0, 1, 2], threads=threads))
        part["speedup_vs_fp32"] = [part["seconds_per_image"].iloc[2 * (i // 2)] / t
                                   for i, t in enumerate(part["seconds_per_image"])]
        part.insert(0, "inverted", name)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.insert(2, "steps_per_image", steps)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=LOOPS, default=list(LOOPS))
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    parser.add_argument("--threads", type=int, default=1, help="threads of the precision table")
    parser.add_argument("--no-layout", action="store_true", help="skip the 2-thread / 2-process comparison")
    parser.add_argument("--pii-quality", action="store_true",
                        help="PII per image at the mini schedule, judged (slow: minutes per thread count)")
    parser.add_argument("--pii-model", default="cifar10-resnet20",
                        help="the model of the per-image PII comparison (default cifar10-resnet20)")
    parser.add_argument("--pii-threads", nargs="+", type=int, default=[1, 2],
                        help="thread counts of the per-image PII comparison (default 1 2)")
    parser.add_argument("--baseline-quality", action="store_true",
                        help="DeepDream / DeepInversion at the mini schedule, fp32 vs the speed switch, judged")
    parser.add_argument("--out", default=str(ROOT / "data" / "benchmark"), help="folder of the CSV files")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    torch.set_num_threads(args.threads)
    machine = reproduce.describe_host(reproduce.host())
    print(f"host: {machine}", flush=True)
    cases = build_cases(args.only)
    rows = []
    for case in cases:
        fp32 = None
        for setting in SETTINGS:
            step, floor = time_case(case, setting, args.repeats)
            fp32 = step if setting == "fp32" else fp32
            rows.append({"loop": case.loop, "model": case.model, "batch": case.batch, "weights": case.weights,
                         "setting": setting, "threads": args.threads, "step_s": step, "floor_s": floor,
                         "speedup": fp32 / step, "overhead": step / floor, "host": machine})
            print(f"{case.loop:30s} {case.model:22s} {setting:20s} {step * 1e3:9.1f} ms  x{fp32 / step:.2f}"
                  f"  overhead {step / floor:.2f}", flush=True)
    table = pd.DataFrame(rows)
    if not args.no_layout:
        torch.set_num_threads(2)
        two = [seconds_per_call(c.build("fp32", False)[0], args.repeats) for c in cases]
        torch.set_num_threads(args.threads)
        conc = two_processes(args.only, args.repeats)
        one = table[table.setting == "fp32"]["step_s"].tolist()
        layout = pd.DataFrame({"loop": [c.loop for c in cases], "model": [c.model for c in cases],
                               "one_thread_s": one, "two_threads_s": two,
                               "two_processes_s_each": [conc[i] for i in range(len(cases))]})
        layout["two_threads"] = layout.one_thread_s / layout.two_threads_s
        layout["two_processes"] = 2 * layout.one_thread_s / layout.two_processes_s_each
        layout["processes_over_threads"] = layout.two_processes / layout.two_threads
        layout.to_csv(out / "thread_layout.csv", index=False)
    wide = table.pivot_table(index=["loop", "model"], columns="setting", values="speedup", sort=False)[list(SETTINGS)]
    best = table.loc[table.groupby(["loop", "model"], sort=False)["step_s"].idxmin()]
    table.to_csv(out / "precision.csv", index=False)
    pd.set_option("display.width", 200)
    print(f"\nspeed-up over fp32 per step ({args.threads} thread(s); contended timings: read the ratios)")
    print(wide.round(2).to_string())
    print("\nfastest setting per loop, and its step time over the bare forward+backward")
    print(best[["loop", "model", "setting", "step_s", "speedup", "overhead"]].round(3).to_string(index=False))
    if not args.no_layout:
        print("\nthread layout (fp32): 2 threads in one process vs two one-thread processes, throughput over 1 thread")
        print(layout[["loop", "model", "two_threads", "two_processes", "processes_over_threads"]].round(2)
              .to_string(index=False))
    if "pii" in args.only:
        attention = attention_forms(args.repeats)
        attention.to_csv(out / "attention_forms.csv", index=False)
        print(f"\nViT forward + backward, fused vs eager attention ({args.threads} thread(s))")
        print(attention.round(4).to_string(index=False))
        per_image = pii_per_image(args.pii_threads, args.pii_quality, args.pii_model)
        stem = "pii_per_image" + ("_quality" if args.pii_quality else "")
        stem += "" if args.pii_model == "cifar10-resnet20" else f"_{args.pii_model}"
        per_image.to_csv(out / f"{stem}.csv", index=False)
        print(f"\nPII of {args.pii_model} per inverted image, modes side by side (same run)")
        print(per_image.round(3).to_string(index=False))
    if args.baseline_quality:
        baselines = baselines_per_image(args.threads)
        baselines.to_csv(out / "baselines_quality.csv", index=False)
        print(f"\nDeepDream / DeepInversion per inverted image, fp32 vs the speed switch ({args.threads} thread(s))")
        print(baselines.round(3).to_string(index=False))
    print(f"\nwrote {out}/*.csv in {time.time() - start:.0f} s on {machine}")


if __name__ == "__main__":
    main()
