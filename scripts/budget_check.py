"""Is a weak mini-profile result the budget or the method? Train longer and compare, side by side.

Runs outside the notebooks (nothing here writes to figures/): it loads the cached mini zoo (run
``make study`` first), trains with ``--scale`` times the mini profile's steps and prints the same
measures at 1x and at the larger budget:

* ``feedforward``: the logit-conditioned GAN on the zoo CNN's logits (notebook 02's recipe, with
  a wider discriminator, and with two time-scale learning rates and 2 D steps per G step): PSNR,
  SSIM, outside-judge agreement, factor errors relative to same-class chance, and the
  discriminator's final hinge loss;
* ``zeroshot``: the zero-shot inverse of the zoo CNN (notebook 05's recipe, main data kind):
  PSNR per depth next to the constant mean-image floor.

    .venv/bin/python scripts/budget_check.py feedforward zeroshot --scale 10
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
import yaml

from inversion import zeroshot as zs
from inversion.data import fashion_scenes
from inversion.feedforward.experiment import Study
from inversion.models import zoo
from inversion.zeroshot.evaluate import constant_image_floor, evaluate_depths

PROFILES = Path(__file__).resolve().parents[1] / "notebooks" / "profiles"


def mini(notebook: str) -> dict:
    return yaml.safe_load((PROFILES / f"{notebook}.yaml").read_text())["mini"]


def feedforward(scale: int) -> pd.DataFrame:
    p = mini("02_feedforward_inversion")
    study = Study.setup("mini", p["n_train"], p["n_eval"], p["probe"], judge=p["judge"], seed=p["seed"])
    name = p["classifiers"][0]
    logits = study.logits(name, "test")
    steps, long = p["gan"]["steps"], p["gan"]["steps"] * scale
    wide_d = {"d_widths": [64, 128, 128], "d_downsample": [True, True, False]}
    ttur = {"lr": 2e-4, "lr_d": 4e-4, "n_dis": 2}   # two time-scale update rule, 2 D steps per G step
    rows = []
    for label, overrides in [(f"GAN, {steps} steps", {}),
                             (f"GAN, {long} steps", {"steps": long}),
                             (f"GAN, {steps} steps, discriminator 64-128-128", wide_d),
                             (f"GAN, {steps} steps, lr 2e-4 / 4e-4, 2 D steps", ttur),
                             (f"GAN, {long} steps, lr 2e-4 / 4e-4, 2 D steps", {**ttur, "steps": long})]:
        inverse = study.gan(name, p["gan"], **overrides)
        d_loss = inverse.log["d_loss"][-50:]   # hinge: 2.0 = D scores real and generated images alike
        rows.append(study.summary(inverse.invert(logits, seed=p["seed"]), classifier=name, method=label,
                                  train_seconds=inverse.log.get("seconds"), final_d_loss=sum(d_loss) / len(d_loss)))
    rows.append(study.summary(torch.full_like(study.test.float_images(), 0.5), classifier="(none)",
                              method="constant grey"))
    return pd.DataFrame(rows)


def zeroshot(scale: int) -> pd.DataFrame:
    p = mini("05_zero_shot_inversion")
    cnn = zoo.load(p["cnn_model"], "mini")
    judge = zoo.load(p["judge_model"], "mini")
    x = fashion_scenes.load("test").float_images(slice(0, p["n_test"]))
    floor = constant_image_floor(x)["psnr"]
    rows = []
    for factor in (1, scale):
        # every field as notebook 05 sets it, so the 1x inverse is the notebook's cached one
        config = zs.InverseConfig(data=p["main_kind"], block_steps=p["block_steps"] * factor,
                                  finetune_steps=p["finetune_steps"] * factor, batch_size=p["batch_size"],
                                  lr=p["lr"], width_mult=p["width_mult"], pool_size=p["deepinversion_pool"],
                                  deepinversion_steps=p["deepinversion_steps"], seed=p["seed"])
        chain, inverse, record = zs.fit_inverse(cnn, p["cnn_cuts"], config, "mini")
        depth_rows, _ = evaluate_depths(chain, inverse, x, judge)
        rows += [{"steps per stage": config.block_steps + config.finetune_steps,
                  "train_seconds": record["train_seconds"], "constant floor psnr": floor, **r} for r in depth_rows]
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checks", nargs="+", choices=["feedforward", "zeroshot"])
    parser.add_argument("--scale", type=int, default=10, help="multiple of the mini profile's steps (default 10)")
    args = parser.parse_args()
    if args.scale < 2:
        parser.error("--scale must be at least 2")
    pd.set_option("display.width", 200)
    for check in args.checks:
        table = {"feedforward": feedforward, "zeroshot": zeroshot}[check](args.scale)
        print(f"\n== {check}: mini budget vs {args.scale}x\n{table.round(3).to_string(index=False)}")


if __name__ == "__main__":
    main()
