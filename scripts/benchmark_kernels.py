"""The Triton kernels of ``inversion.kernels`` against their torch references, at the papers' shapes.

    .venv/bin/python scripts/benchmark_kernels.py                 # cuda when present, else the CPU
    .venv/bin/python scripts/benchmark_kernels.py --device cuda --csv figures/kernels.csv
    .venv/bin/python scripts/benchmark_kernels.py --size 32 --targets 4 --copies 8 --leaves-images 16

Three workloads, each with freshly drawn random parameters (seeded; the same draw for every
implementation):

* ``pii forward`` / ``pii forward+backward`` - Plug-In Inversion's per-step augmentation (jitter,
  ensemble of B copies, ColorShift; Ghiasi et al. 2022, section 3) of N targets at S px:
  by default the paper profile's 10 targets x 16 copies = 160 images of 224 px. Forward+backward
  takes the gradient of a fixed random linear function of the copies with respect to the images
  (mu and sigma need no gradient, as in PII's loop).
* ``dead leaves`` - zero-shot inversion's synthesized data (Dong et al. 2021): 64 images of 224 px,
  the dead-leaves disc count of ``inversion.zeroshot.synthetic.dead_leaves`` (its default), radii
  with density r^-3 in [S/16, S/2], shaded colours over a background image.
* ``random shapes`` - the same with rotated ellipses, rectangles and triangles (the shape count of
  ``synthetic.shapes``), in unit coordinates.

Implementations, side by side in one run: ``torch`` (the eager reference), ``torch.compile`` (of
the same reference function, inductor; its first-call compile time is printed separately),
``triton`` (the kernel; CUDA only), and for the renderers ``full mask`` - the vectorized
(N, K, H, W)-mask rendering the kernels replace, as ``synthetic`` wrote it (flat colours only,
so its memory is a lower bound). For each: median wall and process-CPU milliseconds per call over ``--repeats``
calls after ``--warmup`` calls (on a shared CPU the CPU time is the fairer number; on CUDA the
wall time, with synchronization, is the one that counts), and peak memory above what was allocated before the call (the output
included): ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the allocator events of
``torch.profiler`` (tensor memory, not the process's resident size).

On a GPU this measures what the kernels are for: milliseconds per call of the fused PII
augmentation against the reference's gather + repeat_interleave + multiply-add (and its autograd
backward with the scatter-add of the gather), and the renderers' time and memory against the
chunked reference and the full mask (whose peak at 64 x 40 discs x 224 px is several hundred MB).
On the CPU the kernel cannot run (Triton needs CUDA; the interpreter is for tests only): the script
times the references, says so, and ``--compile auto`` skips ``torch.compile`` there (``--compile
yes`` forces it; compiling takes a minute or more on a small CPU).

Timings on a shared machine are contended: compare rows of one run, not runs.
"""
from __future__ import annotations

import argparse
import inspect
import itertools
import math
import statistics
import sys
import time
from typing import Callable

import torch

from inversion.kernels import (draw_pii_parameters, pii_augment, render_shapes, render_shapes_reference,
                               triton_available)
from inversion.kernels.pii_augment import pii_augment_reference


def default_count(function_name: str, parameter: str, fallback: int) -> int:
    """The default shape count of a ``zeroshot.synthetic`` generator (what the notebooks draw)."""
    try:
        from inversion.zeroshot import synthetic
        return int(inspect.signature(getattr(synthetic, function_name)).parameters[parameter].default)
    except Exception:
        return fallback


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable, device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds per call (CPU time is the fairer number
    on a shared CPU, where wall time includes waiting for a core)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def peak_bytes(fn: Callable, device: torch.device) -> int:
    """Peak tensor memory one call allocates above what is allocated before it (output included)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return int(peak)
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    del out
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    deltas = (e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage for e in events)
    return int(max(itertools.accumulate(deltas, initial=0)))


# --- workloads -------------------------------------------------------------------------------------

def pii_workload(targets: int, copies: int, size: int, device: torch.device, seed: int):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.rand(targets, 3, size, size, generator=g, device=device, requires_grad=True)
    shifts, mu, sigma = draw_pii_parameters(x, copies, max(0, round(size / 7)), 1.0, 1.0, g)
    grad_out = torch.randn(targets * copies, 3, size, size, generator=g, device=device)

    def forward(fn):
        return lambda: fn(x, shifts, mu, sigma, copies)

    def forward_backward(fn):
        return lambda: torch.autograd.grad(fn(x, shifts, mu, sigma, copies), x, grad_out)[0]
    return forward, forward_backward


def leaves_parameters(images: int, count: int, size: int, device: torch.device, seed: int, shapes: bool):
    g = torch.Generator(device=device).manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g, device=device)   # noqa: E731
    if shapes:                                     # synthetic.shapes: unit coordinates, every kind
        params = dict(centers=rand(images, count, 2), sizes=0.06 + 0.32 * rand(images, count, 2))
        options = dict(kinds=torch.randint(0, 3, (images, count), generator=g, device=device) + 1,
                       angles=math.pi * rand(images, count),
                       xs=torch.linspace(0, 1, size, device=device), ys=torch.linspace(0, 1, size, device=device))
        scale = 1.0
    else:                                          # synthetic.dead_leaves: r^-3 radii in [S/16, S/2]
        rmin, rmax = size / 16, size / 2
        radius = (rmin ** -2 + rand(images, count) * (rmax ** -2 - rmin ** -2)) ** -0.5
        params = dict(centers=rand(images, count, 2) * size, sizes=radius)
        options = {}
        scale = 1.0 / size
    params["colors"] = rand(images, count, 3)
    params["background"] = rand(images, 3, size, size)
    options["gradients"] = 0.3 * scale * torch.randn(images, count, 2, generator=g, device=device)
    return params, options


def full_mask_render(centers, sizes, colors, background, height, width, kinds=None, angles=None,
                     gradients=None, xs=None, ys=None):
    """The (N, K, H, W)-mask rendering the kernel replaces (flat colours: a lower bound on memory)."""
    xs = torch.arange(width, device=centers.device) + 0.5 if xs is None else xs
    ys = torch.arange(height, device=centers.device) + 0.5 if ys is None else ys
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    dx, dy = xx - centers[..., 0, None, None], yy - centers[..., 1, None, None]
    if kinds is None:
        inside = dx ** 2 + dy ** 2 <= sizes[..., None, None] ** 2
    else:
        cos, sin = angles.cos()[..., None, None], angles.sin()[..., None, None]
        u = (cos * dx + sin * dy) / sizes[..., 0, None, None]
        v = (-sin * dx + cos * dy) / sizes[..., 1, None, None]
        kind = kinds[..., None, None]
        inside = torch.where(kind == 1, u ** 2 + v ** 2 <= 1, (u.abs() <= 1) & (v.abs() <= 1))
        inside = torch.where(kind == 3, (v >= -1) & (v <= 1) & (u.abs() <= (1 - v) / 2), inside)
    order = torch.arange(1, centers.shape[1] + 1, device=centers.device).view(1, -1, 1, 1)
    top = torch.where(inside, order, torch.zeros_like(order)).amax(dim=1)
    n, c = colors.shape[0], colors.shape[-1]
    stack = torch.cat([torch.zeros(n, 1, c, device=colors.device, dtype=colors.dtype), colors], dim=1)
    image = torch.gather(stack, 1, top.flatten(1).unsqueeze(-1).expand(-1, -1, c))
    image = image.view(n, height, width, c).permute(0, 3, 1, 2)
    return torch.where((top > 0).unsqueeze(1), image, background)


# --- the run ---------------------------------------------------------------------------------------

def measure(name: str, implementation: str, make: Callable[[], Callable], device, args, rows: list) -> None:
    row = {"workload": name, "implementation": implementation, "ms_per_call": float("nan"),
           "cpu_ms_per_call": float("nan"), "peak_mib": float("nan"), "first_call_s": float("nan"), "note": ""}
    try:
        fn = make()
        start = time.perf_counter()
        fn()                                                   # compiles torch.compile / Triton
        synchronize(device)
        row["first_call_s"] = time.perf_counter() - start
        wall, cpu = seconds_per_call(fn, device, args.warmup, args.repeats)
        row["ms_per_call"], row["cpu_ms_per_call"] = 1e3 * wall, 1e3 * cpu
        row["peak_mib"] = peak_bytes(fn, device) / 2 ** 20
        if device.type == "cpu" and implementation == "torch.compile":
            row["peak_mib"] = float("nan")                     # inductor's CPU buffers escape the profiler
            row["note"] = "CPU peak not measurable for compiled code"
    except Exception as error:                                 # report and go on with the others
        row["note"] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
    rows.append(row)
    print(f"  {name:22s} {implementation:14s} {row['ms_per_call']:10.2f} ms (CPU {row['cpu_ms_per_call']:.2f} ms) "
          f"{row['peak_mib']:10.1f} MiB"
          f"   first call {row['first_call_s']:7.2f} s {row['note']}", flush=True)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda[:i]")
    parser.add_argument("--size", type=int, default=224, help="image side in px (both workloads)")
    parser.add_argument("--targets", type=int, default=10, help="PII targets N (paper profile: 10 classes)")
    parser.add_argument("--copies", type=int, default=16, help="PII ensemble size B (paper profile: 16)")
    parser.add_argument("--leaves-images", type=int, default=64, help="images per dead-leaves batch")
    parser.add_argument("--discs", type=int, default=default_count("dead_leaves", "discs", 40),
                        help="discs per dead-leaves image (default: synthetic.dead_leaves's)")
    parser.add_argument("--shapes", type=int, default=default_count("shapes", "count", 12),
                        help="shapes per random-shapes image (default: synthetic.shapes's)")
    parser.add_argument("--compile", choices=("auto", "yes", "no"), default="auto",
                        help="time torch.compile(reference) too (auto: on cuda only)")
    parser.add_argument("--full-mask", choices=("yes", "no"), default="yes",
                        help="also time the (N, K, H, W)-mask rendering the kernel replaces")
    parser.add_argument("--warmup", type=int, default=None, help="calls before timing (default 3 cuda, 1 cpu)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default 20 cuda, 3 cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.repeats = args.repeats if args.repeats is not None else (20 if cuda else 3)
    use_compile = args.compile == "yes" or (args.compile == "auto" and cuda)
    kernel = cuda and triton_available()
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if cuda else
                                f", {torch.get_num_threads()} threads") +
          f"; torch {torch.__version__}; triton {'importable' if triton_available() else 'missing'}")
    if not kernel:
        print("the Triton kernels need a CUDA device" + ("" if cuda else " (this run times the torch "
              "references only; the kernels' correctness is tested in Triton's interpreter by "
              "tests/test_kernels.py)"))
    if not use_compile:
        print(f"torch.compile(reference) skipped (--compile {args.compile})")
    rows: list[dict] = []

    def implementations(reference: Callable, kernel_fn: Callable, full_mask: Callable | None = None):
        out = [("torch", reference)]
        if use_compile:
            compiled = torch.compile(reference)
            out.append(("torch.compile", compiled))
        if kernel:
            out.append(("triton", kernel_fn))
        if full_mask is not None and args.full_mask == "yes":
            out.append(("full mask", full_mask))
        return out

    n, b, s = args.targets, args.copies, args.size
    print(f"\nPII augmentation: {n} targets x {b} copies = {n * b} images of {s} px")
    forward, forward_backward = pii_workload(n, b, s, device, args.seed)
    triton_pii = lambda x, sh, mu, sg, c: pii_augment(x, sh, mu, sg, c, backend="triton")   # noqa: E731
    for label, wrap in (("pii forward", forward), ("pii forward+backward", forward_backward)):
        for implementation, fn in implementations(pii_augment_reference, triton_pii):
            measure(label, implementation, lambda wrap=wrap, fn=fn: wrap(fn), device, args, rows)

    for label, count, shapes in (("dead leaves", args.discs, False), ("random shapes", args.shapes, True)):
        print(f"\n{label}: {args.leaves_images} images of {s} px, {count} shapes each")
        params, options = leaves_parameters(args.leaves_images, count, s, device, args.seed, shapes)

        def reference(*, _p=params, _o=options):
            return render_shapes_reference(**_p, height=s, width=s, **_o)

        def triton_render(*, _p=params, _o=options):
            return render_shapes(**_p, height=s, width=s, **_o, backend="triton")

        def full(*, _p=params, _o=options):
            return full_mask_render(**_p, height=s, width=s, **_o)
        for implementation, fn in implementations(reference, triton_render, full):
            measure(label, implementation, lambda fn=fn: fn, device, args, rows)

    print("\nworkload               implementation    ms/call  CPU ms/call   peak MiB   vs torch (wall)")
    base = {r["workload"]: r["ms_per_call"] for r in rows if r["implementation"] == "torch"}
    for r in rows:
        ratio = base.get(r["workload"], float("nan")) / r["ms_per_call"] if r["ms_per_call"] else float("nan")
        print(f"{r['workload']:22s} {r['implementation']:14s} {r['ms_per_call']:10.2f} {r['cpu_ms_per_call']:12.2f} "
              f"{r['peak_mib']:10.1f} "
              f"{ratio:8.2f}x {r['note']}")
    if args.csv:
        import csv
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
