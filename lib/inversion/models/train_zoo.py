"""Train the study's zoo: ``python -m inversion.models.train_zoo [--only a,b] [--profile mini]``.

What ``make zoo`` runs. Trains every model trained by the study whose committed files
(``data/zoo/mini/``) are missing or do not match the registered recipe, ``--workers`` models at a
time, one thread per worker (the same seed on one thread gives the same file on the same
machine). Interrupted, it continues where it stopped: finished models are kept and a model in
progress resumes from its partial checkpoint in ``<data>/checkpoints/zoo-partial/``.
"""
from __future__ import annotations

import argparse
import time

from . import zoo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated model names (default: every trained model)")
    parser.add_argument("--profile", default="mini", choices=zoo.PROFILES)
    parser.add_argument("--workers", type=int, default=2, help="parallel single-threaded training processes")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or None
    for name in names or []:
        zoo.get_spec(name)  # unknown names fail early, with suggestions
    start = time.time()
    trained = zoo.train_zoo(names, args.profile, args.workers, args.device)
    print(f"zoo: trained {len(trained)} model(s) in {(time.time() - start) / 60:.1f} min"
          + (f": {', '.join(trained)}" if trained else " (everything was up to date)"))
    for name in names or zoo.list_models(source="trained"):
        meta = zoo.read_metadata(name, args.profile)
        if meta:
            robust = f", robust {meta['robust_accuracy']:.4f}" if "robust_accuracy" in meta else ""
            print(f"  {name:26s} test {meta['test_accuracy']:.4f}{robust}, {meta['train_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
