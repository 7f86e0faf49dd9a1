"""A paper-shaped dry run: every notebook in the ``paper`` profile, with tiny step counts.

    python scripts/paper_dry.py                 # on the CPU (make paper-dry)
    python scripts/paper_dry.py --device cuda   # on a GPU (make paper-dry DEVICE=cuda)
    python scripts/paper_dry.py --only 01 05 --show-overrides

What a first real run of the paper profile would hit -- a model that does not load, a tensor on
the wrong device, a shape that only 224 px images produce, a memory peak -- shows up here in
minutes instead of hours, without ImageNet and without hub weights:

* the paper profile's models, image sizes and code paths are kept; what is cut is read from each
  notebook's ``paper`` block (:func:`cuts`): step counts to 2, dataset sizes, batches, ensembles
  and pools to a few items, ablation lists to their first entry; every cut value is printed;
* on the CPU the study's own networks are **narrowed** (:func:`_narrow`): the channel widths of the
  logit GANs, decoders, SNGAN and zero-shot inverses are divided by ``NARROW`` (same layers,
  resolution and code paths; a 128 px BigGAN step at ch=64 takes minutes on two cores);
  ``--device cuda`` keeps the paper's widths, which the README's memory estimates are for;
* the timm models get **random weights**, saved under the loader's file names in a folder that
  ``INVERSION_TIMM_DIR`` points to; the Fashion-Scenes zoo of the paper profile gets untrained
  checkpoints (evaluated, so their metadata are real numbers of untrained models);
* ``IMAGENET_DIR`` points to a tiny ImageNet-style folder written here (1000 class folders of
  smooth random images, ``train/`` and ``val/``);
* ``FACES_DIR`` points to a tiny fake face folder written here (:func:`write_face_folder`: a flat
  folder of a few dozen smooth random 178x218 JPEGs, the shape of CelebA's aligned crops), so
  notebook 06 takes its 128 px face path;
* everything is written under ``data/paper-dry/`` (data, checkpoints, run logs) and
  ``figures/paper-dry/`` (results, executed notebooks, ``SUMMARY.md``), never into the real
  ``paper`` folders.

Numbers from a dry run mean nothing: random weights, two steps. What it measures is whether each
notebook finishes, its wall time, its peak memory (``torch.cuda.max_memory_allocated`` on cuda,
resident memory on the CPU) and the rate of its slowest progress-bar loop.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRY_DATA = ROOT / "data" / "paper-dry"
DRY_FIGURES = ROOT / "figures" / "paper-dry"
# Caches of data/ the dry run may share (same content, keyed by recipe hash); checkpoints, runs
# and html are never shared, so the dry run's random weights cannot reach a real paper run.
SHARED_DATA = ("fashion-mnist", "fashion-scenes", "cifar10", "cifar10-jpeg", "photos")

STEPS = 2           # every optimization loop
COUNT = 32          # every dataset size / number of evaluated images
BATCH = 4           # every batch size
ENSEMBLE = 2        # PII copies and the like
DRY_RUN_VERSION = 3   # of the untrained checkpoints' metadata; another version rewrites them
MIN_COUNTS = {"n_pool": 100, "gan_n_train": 256, "n_train": 256}  # enough for fractions and batches
NARROW = 16         # channel widths of the study's own networks are divided by this on the CPU
WIDTHS = ("g_widths", "d_widths", "widths")                               # lists of channel counts
WIDTH = ("g_width", "d_width", "decoder_width", "hidden", "width_mult")   # one channel count (or factor)


def _narrow(key: str, value):
    """The CPU dry run's narrower value of a channel-width parameter (``None``: not a width)."""
    leaf = key.rsplit(".", 1)[-1]
    if leaf in WIDTHS and isinstance(value, list) and all(isinstance(v, int) for v in value):
        return [max(4, v // NARROW) for v in value]
    if leaf in WIDTH and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / NARROW if isinstance(value, float) else max(4, value // NARROW)
    return None


def _cut_value(key: str, value, steps: int = STEPS):
    """The dry run's value for one paper parameter (``None``: keep the paper's)."""
    leaf = key.rsplit(".", 1)[-1]
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if leaf == "steps" or leaf.endswith("_steps") or leaf.endswith("steps_per_stage"):
            return min(value, steps)
        if leaf == "checkpoint_every":   # one checkpoint at the end: the path runs, the disk is spared
            return min(value, steps)
        if leaf.startswith("n_") or leaf.endswith(("_n_train", "_n_eval", "_images", "_pool")):
            floor = MIN_COUNTS.get(leaf, 0)
            return min(value, max(COUNT, floor)) if leaf not in ("n_show", "n_noise", "n_examples") else min(value, 4)
        if leaf in ("batch_size", "gan_batch") or leaf.endswith("_batch"):
            return min(value, BATCH)
        if leaf == "copies" or leaf.endswith("_copies"):
            return min(value, ENSEMBLE)
        if leaf.endswith("_units"):
            return min(value, 2)
        return None
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        if leaf.endswith("_record"):            # the step counts at which a curve is recorded
            return [1, steps] if steps > 1 else [1]
        if leaf.startswith("ablation_"):
            return value[:1]
        if leaf == "classes":
            return value[:2]
        return None
    if isinstance(value, list) and leaf.startswith("ablation_"):
        return value[:1]
    return None


def cuts(paper: dict, device: str, threads: int, prefix: str = "") -> dict:
    """The overrides of one notebook's paper block: ``{dotted key: dry value}``, nested dicts walked."""
    out = {}
    for key, value in paper.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            if key in ("ablations", "logit_manipulations", "objectives", "score_judges"):
                continue                          # named variants: keep them all, they are code paths
            out.update(cuts(value, device, threads, prefix=f"{name}."))
            continue
        if key == "device":
            new = device
        elif key == "threads":
            new = threads
        elif key in ("workers", "train_workers"):
            new = 1
        else:
            new = _cut_value(name, value)
            if new is None and device == "cpu":
                new = _narrow(name, value)
        if new is not None and new != value:
            out[name] = new
    return out


def write_timm_checkpoints(folder: Path) -> list[str]:
    """Random-weight checkpoints of every registered timm model, under the loader's file names."""
    import torch
    from safetensors.torch import save_file

    from inversion.models import zoo

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in zoo.list_models(source="timm"):
        path = folder / f"{name}.safetensors"
        if not path.is_file():
            torch.manual_seed(0)
            net = zoo.get_spec(name).build()
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path.with_suffix(".tmp")))
            path.with_suffix(".tmp").replace(path)
        written.append(name)
    return written


def referenced_models(blocks: dict[str, dict]) -> set[str]:
    """Every registered model name that appears anywhere in the paper blocks."""
    from inversion.models import zoo

    found: set[str] = set()

    def walk(value):
        if isinstance(value, str) and value in zoo.REGISTRY:
            found.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(blocks)
    return found


def untrained_metrics(model, spec, device: str, n: int = COUNT) -> dict:
    """Accuracy of an untrained model on the first ``n`` test images (robust accuracy too, where
    the zoo records one), under the keys of the zoo's metadata."""
    from inversion.models import zoo
    from inversion.models.training import accuracy, robust_accuracy

    test = zoo.test_set("paper", spec.dataset)
    images, labels = test.images[:n], test.labels[:n]
    metrics = {"test_accuracy": accuracy(model, images, labels, device=device),
               "test_set": f"{spec.dataset} test, first {n} images (untrained model)"}
    if spec.dataset == "cifar10":   # notebook 00 re-checks the stored exact-100 accuracy
        from inversion.data import cifar10

        exact = cifar10.exact_first100()
        metrics["data_source"] = getattr(test, "source", None)
        metrics["exact100_accuracy"] = accuracy(model, exact.images, exact.labels, device=device)
    if spec.robust_eps is not None or spec.name == "cnn":
        metrics["robust_accuracy"] = robust_accuracy(model, images, labels, eps=zoo.ROBUST_EPS, steps=2, device=device)
        metrics["robust_attack"] = f"L2 PGD, eps={zoo.ROBUST_EPS}, 2 steps, first {n} test images"
    return metrics


def write_untrained_zoo(names: set[str], device: str) -> list[str]:
    """Untrained (seeded random) checkpoints of the paper profile's trained models, with metadata.

    The metadata hold real (chance-level) accuracies of the untrained models on a few test
    images, zero training steps and ``"untrained": true``, so nothing downstream mistakes them
    for a zoo.
    """
    import dataclasses

    import torch
    from safetensors.torch import save_file

    from inversion import reproduce
    from inversion.models import zoo
    from inversion.paths import sha256
    from inversion.models.architectures import Classifier

    written = []
    for name in sorted(n for n in names if zoo.get_spec(n).source == "trained"):
        weights, meta = zoo.checkpoint_files(name, "paper")
        if weights.is_file() and meta.is_file() and json.loads(meta.read_text()).get("dry_run") == DRY_RUN_VERSION:
            written.append(name)
            continue
        spec = zoo.get_spec(name)
        torch.manual_seed(0)
        model = Classifier(spec.build(), spec.config, name).eval()
        metrics = untrained_metrics(model, spec, device)
        weights.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous().cpu() for k, v in model.net.state_dict().items()}, str(weights))
        recipe = zoo.scaled_recipe(spec, "paper")
        version = reproduce.code_version()
        meta.write_text(json.dumps({   # the keys of the zoo's own metadata (models/zoo.py)
            "name": name, "description": f"{spec.description} -- UNTRAINED (paper-shaped dry run)",
            "dataset": spec.dataset, "profile": "paper", "recipe": dataclasses.asdict(recipe),
            "recipe_hash": recipe.key(), "seed": 0, "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds": 0.0, "train_steps": 0, "final_train_loss": None, **metrics,
            "sha256": sha256(weights), "bytes": weights.stat().st_size, "dtype": "float32",
            "torch": torch.__version__, "threads": torch.get_num_threads(), "device": device,
            "code_commit": version["commit"] or "unknown", "code_dirty": version["dirty"],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "untrained": True, "dry_run": DRY_RUN_VERSION}, indent=2) + "\n")
        written.append(name)
    return written


def write_image_folder(root: Path, classes: int = 1000, per_class: int = 1, size: int = 256) -> Path:
    """A tiny ImageNet-style folder (``train/`` and ``val/``, ``n%08d`` class folders) of smooth images."""
    import numpy as np
    from PIL import Image

    done = root / ".complete"
    if done.is_file() and done.read_text() == f"{classes} {per_class} {size}":
        return root
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)   # upsampled: smooth and small
                Image.fromarray(coarse).resize((size, size), Image.BILINEAR).save(folder / f"{split}_{c}_{i}.JPEG",
                                                                                   quality=85)
    done.write_text(f"{classes} {per_class} {size}")
    return root


def write_face_folder(root: Path, count: int = 48, size: tuple[int, int] = (178, 218)) -> Path:
    """A tiny flat folder of fake "faces" for notebook 06's face path: ``count`` smooth random RGB JPEGs of
    ``size`` (width, height; CelebA's aligned crops are 178x218, so the loader's centre crop runs)."""
    import numpy as np
    from PIL import Image

    done = root / ".complete"
    stamp = f"{count} {size[0]} {size[1]}"
    if done.is_file() and done.read_text() == stamp:
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        coarse = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)          # upsampled: smooth and small
        Image.fromarray(coarse).resize(size, Image.BILINEAR).save(root / f"{i + 1:06d}.jpg", quality=90)
    done.write_text(stamp)
    return root


_BAR = re.compile(r"(?P<desc>[^\r\n|]{1,80}?):\s+(?P<pct>\d+)%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*"
                  r"\[(?P<elapsed>[\d:]+)<[^,\]]*,\s*(?P<rate>[\d.]+|\?)(?P<unit>[a-z]+/s|s/[a-z]+)")


def slowest_loop(log: str) -> str:
    """The progress bar with the longest elapsed time in a run log, as ``desc: rate``."""
    best, best_seconds = "", -1.0
    for m in _BAR.finditer(log):
        parts = [int(p) for p in m["elapsed"].split(":")]
        seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
        if seconds >= best_seconds and m["rate"] != "?":
            rate = float(m["rate"])
            per_s = rate if m["unit"].endswith("/s") else (1 / rate if rate else 0.0)
            best, best_seconds = f"{m['desc'].strip()}: {per_s:.3g} it/s ({m['n']} its in {seconds} s)", seconds
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=os.environ.get("DEVICE", "cpu"), help="cpu (default) or cuda")
    parser.add_argument("--only", nargs="+", metavar="NB", help="notebook names or prefixes")
    parser.add_argument("--set", action="append", default=[], metavar="[NB:]KEY=VALUE", dest="extra",
                        help="a further override on top of the cuts (as for inversion.reproduce); repeatable")
    parser.add_argument("--show-overrides", action="store_true", help="print the cuts and exit")
    args = parser.parse_args(argv)

    os.environ["INVERSION_DATA"] = str(DRY_DATA)
    os.environ["INVERSION_FIGURES"] = str(DRY_FIGURES)
    os.environ["INVERSION_TIMM_DIR"] = str(DRY_DATA / "timm")
    os.environ["IMAGENET_DIR"] = str(DRY_DATA / "imagenet")
    os.environ["FACES_DIR"] = str(DRY_DATA / "faces")
    import torch

    from inversion import reproduce

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but torch sees no GPU")
    threads = torch.get_num_threads()
    chosen = reproduce.select(args.only)
    blocks = {name: {k: v for k, v in reproduce.parameters(name, "paper").items() if k != "profile"}
              for name in chosen}
    overrides = {name: cuts(block, args.device, threads) for name, block in blocks.items()}
    for name, values in reproduce.parse_overrides(args.extra, list(chosen)).items():
        overrides[name].update(values)
    for name, values in overrides.items():
        print(f"{name}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()))
    if args.show_overrides:
        return 0

    DRY_FIGURES.mkdir(parents=True, exist_ok=True)
    (DRY_FIGURES / ".gitignore").write_text("*\n")       # the dry run's results are never committed
    DRY_DATA.mkdir(parents=True, exist_ok=True)
    for entry in SHARED_DATA:
        source, link = ROOT / "data" / entry, DRY_DATA / entry
        if source.exists() and not link.exists():
            link.symlink_to(source, target_is_directory=True)
    start = time.time()
    print(f"timm checkpoints (random weights): {', '.join(write_timm_checkpoints(DRY_DATA / 'timm'))}", flush=True)
    print(f"image folder: {write_image_folder(DRY_DATA / 'imagenet')}", flush=True)
    print(f"face folder: {write_face_folder(DRY_DATA / 'faces')}", flush=True)
    print(f"untrained zoo: {', '.join(write_untrained_zoo(referenced_models(blocks), 'cpu'))}", flush=True)
    prepare = time.time() - start

    records = reproduce.run_batch("paper", chosen, overrides)
    lines = ["# Paper-shaped dry run", "",
             "Written by `scripts/paper_dry.py` (`make paper-dry`); not committed. The `paper` profile's models, "
             "image sizes and code paths with random weights and tiny step counts: the numbers mean nothing, "
             "the wall times and memory peaks say what a first real run meets.", "",
             f"Device: `{args.device}`" + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else
                                           f" ({threads} threads)")
             + f"; preparation (checkpoints, image and face folders, untrained zoo): {prepare:.0f} s.", "",
             "| notebook | status | wall time | peak memory | slowest loop | cut parameters |",
             "|---|---|---|---|---|---|"]
    for name, record in records.items():
        log_file = reproduce.runs_dir("paper") / f"{name}.log"
        loop = slowest_loop(log_file.read_text(errors="replace")) if log_file.is_file() else ""
        status = record["status"] + (f" ({record['error']})" if record.get("error") else "")
        cut = ", ".join(f"{k}={json.dumps(v)}" for k, v in overrides[name].items())
        lines.append(f"| [{name}](paper/{name}/{name}.ipynb) | {status} | {record['seconds']:.0f} s "
                     f"| {reproduce.peak_memory(record)} | {loop} | {cut} |")
    total = sum(r["seconds"] for r in records.values())
    lines += ["", f"Total: {total / 60:.1f} min of notebooks, {(time.time() - start) / 60:.1f} min in all.", ""]
    summary = DRY_FIGURES / "SUMMARY.md"
    summary.write_text("\n".join(lines))
    print("\n".join(lines[6:]))
    print(f"Summary: {summary}")
    return reproduce.exit_status(records)


if __name__ == "__main__":
    sys.exit(main())
