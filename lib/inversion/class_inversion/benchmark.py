"""Side-by-side timings of the inversion loop, measured in one run, and the judged top-1 they are
compared at.

* :func:`step_overhead` - seconds per PII step divided by seconds per bare forward+backward of the
  same model on the same batch (targets x copies images, gradient with respect to the input).
* :func:`batching_speedup` - N targets inverted in one batch versus N one-target runs: seconds per
  inverted image of each, and their ratio.
* :func:`judged_top1` - the cross-model top-1 of inverted images (PII's Table 1): per image the
  fraction of judges that give it its target, averaged, with a 95% bootstrap interval.
* :func:`modes_side_by_side` - seconds per image and judged top-1 of several configs of one model,
  interleaved seed by seed so that machine load hits every config alike.

Timings are measurements to report, not assertions: they depend on the machine and its load.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..precision import autocast, channels_last_during, to_memory_format
from .loop import input_size, model_device
from .methods import Config, invert, resolve_stage_input


def bare_step_seconds(model: nn.Module, batch: int, repeats: int = 10, seed: int = 0, size: int | None = None,
                      precision: str = "fp32", channels_last: bool = False) -> float:
    """Median seconds of forward + cross-entropy + backward to the input for a batch of ``batch``
    images of side ``size`` (default: the model's), under the given precision switch."""
    device, size = model_device(model), size or input_size(model)
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=g, device=device).requires_grad_(True)
    classes = getattr(getattr(model, "config", None), "num_classes", 10)
    targets = torch.arange(batch, device=device) % classes
    times = []
    with channels_last_during(model, channels_last):
        for i in range(repeats + 2):
            start = time.perf_counter()
            with autocast(precision, device):
                logits = model(to_memory_format(x, channels_last))
            F.cross_entropy(logits.float(), targets).backward()
            _sync(device)
            if i >= 2:  # two warm-up passes
                times.append(time.perf_counter() - start)
            x.grad = None
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_overhead(model: nn.Module, config: Config, n_targets: int = 10, repeats: int = 3,
                  seed: int = 0) -> dict:
    """PII step time / bare forward+backward time on the same batch (targets x copies images).

    The step time is the median over ``repeats`` full runs of ``config`` (all its stages and
    transforms, the optimizer, clamping, the loss history) divided by its number of steps; the
    bare time is the median of forward+backward passes interleaved with those runs, in the config's
    precision and at the sizes the model sees (each zoom stage's own size for a CNN in stage mode).
    """
    copies = getattr(config, "copies", 1)
    targets = torch.arange(n_targets) % getattr(getattr(model, "config", None), "num_classes", 10)
    invert(model, targets, config, seed=seed, progress=False)  # warm-up
    step, bare = [], []
    size = input_size(model)
    stages = config.stage_list(size)
    sizes = [s.size for s in stages] if resolve_stage_input(model, config) == "stage" else [size] * len(stages)
    weights = [s.steps / config.total_steps for s in stages]
    for r in range(repeats):
        # the floor of a run: the bare pass at each size the model sees, weighted by that stage's steps
        bare.append(sum(w * bare_step_seconds(model, n_targets * copies, repeats=max(3, s.steps // 4), seed=seed + r,
                                              size=seen, precision=config.precision,
                                              channels_last=config.channels_last)
                        for w, s, seen in zip(weights, stages, sizes)))
        result = invert(model, targets, config, seed=seed + r, progress=False)
        step.append(result.seconds / result.steps)
    step_s, bare_s = statistics.median(step), statistics.median(bare)
    return {"batch": n_targets * copies, "step_seconds": step_s, "bare_forward_backward_seconds": bare_s,
            "ratio": step_s / bare_s}


def batching_speedup(model: nn.Module, config: Config, n_targets: int = 10, seed: int = 0) -> dict:
    """Seconds per image of one run over ``n_targets`` targets versus ``n_targets`` one-target runs."""
    targets = torch.arange(n_targets) % getattr(getattr(model, "config", None), "num_classes", 10)
    invert(model, targets[:1], config, seed=seed, progress=False)  # warm-up
    batched = invert(model, targets, config, seed=seed, progress=False).seconds
    single = sum(invert(model, targets[i:i + 1], config, seed=seed + i, progress=False).seconds
                 for i in range(n_targets))
    return {"targets": n_targets, "batched_seconds_per_image": batched / n_targets,
            "one_target_runs_seconds_per_image": single / n_targets, "speedup": single / batched}


def judged_top1(images: torch.Tensor, targets: torch.Tensor, judges: dict[str, nn.Module],
                n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean top-1 of ``images`` over ``judges`` with a 95% bootstrap interval over the images.

    Each image scores the fraction of judges that assign it its target; the interval resamples
    images with replacement (``n_boot`` times, seeded), the cross-model top-1 of PII's Table 1.
    """
    from .evaluate import logits_of

    hits = torch.stack([(logits_of(m, images).argmax(1) == targets.cpu()).float() for m in judges.values()]).mean(0)
    g = torch.Generator().manual_seed(seed)
    boot = hits[torch.randint(len(hits), (n_boot, len(hits)), generator=g)].mean(1)
    return {"top1": hits.mean().item(), "top1_low": boot.quantile(0.025).item(),
            "top1_high": boot.quantile(0.975).item(), "images": len(hits)}


def modes_side_by_side(model: nn.Module, configs: dict[str, Config], judges: dict[str, nn.Module],
                       targets: torch.Tensor, seeds: list[int], threads: int | None = None) -> list[dict]:
    """Seconds per image and judged top-1 (bootstrap interval) of several configs of one model,
    run interleaved seed by seed in this process (so machine load hits every config alike).

    ``threads`` sets ``torch.set_num_threads`` for the duration (restored afterwards).
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        invert(model, targets[:1], next(iter(configs.values())), seed=0, progress=False)  # warm-up
        images = {k: [] for k in configs}
        seconds = {k: 0.0 for k in configs}
        for seed in seeds:
            for name, config in configs.items():
                r = invert(model, targets, config, seed=seed * 1000, progress=False)
                images[name].append(r.images)
                seconds[name] += r.seconds
        rows = []
        all_targets = targets.repeat(len(seeds))
        for name in configs:
            quality = judged_top1(torch.cat(images[name]), all_targets, judges)
            rows.append({"mode": name, "threads": torch.get_num_threads(),
                         "seconds_per_image": seconds[name] / len(all_targets), **quality})
        return rows
    finally:
        torch.set_num_threads(previous)
