"""Is a weak mini-profile result the budget or the method? Train longer and compare, side by side.

Runs outside the notebooks (nothing here writes to figures/): it loads the cached mini zoo (run
``make study`` first), trains with ``--scale`` times the mini profile's steps and prints the same
measures at 1x and at the larger budget:

* ``feedforward``: the logit-conditioned GAN on the zoo CNN's logits (notebook 02's recipe,
  ``--gan-scale`` times longer, and the earlier mini recipe with one learning rate for G and D and
  one D step): PSNR, SSIM, outside-judge agreement, factor errors relative to same-class chance,
  and the discriminator's final hinge loss;
* ``zeroshot``: the zero-shot inverses of the CIFAR-10 ResNet-20 (notebook 05's recipe and main
  data kind: divide and conquer + cycle, and the plain decoder), PSNR per depth on CIFAR-10 test
  images next to the constant mean-image floor;
* ``precision``: notebook 02's generator of the zoo CNN over three seeds in plain fp32 and in the
  mini profile's bf16 autocast + channels_last (two single-threaded workers), each setting's mean
  and seed std side by side, and whether each difference lies within twice the larger seed std;
* ``sngan``: notebook 06's SNGAN over three seeds (1-3) in fp32, bf16 autocast and bf16 + channels_last (two
  single-threaded workers): Frechet distance of 1000 samples to 1000 real test scenes on the judge's
  penultimate features, the judge's mean confidence on the samples, the final discriminator hinge
  loss and the training seconds, with the same seed rule against fp32;
* ``inverse_layout``: notebook 05's ResNet-20 inverse over three seeds (1-3) in bf16 and in bf16 +
  channels_last (two single-threaded workers): PSNR / SSIM per depth on CIFAR-10 test images and
  training seconds, with the seed rule.

    .venv/bin/python scripts/budget_check.py feedforward zeroshot --scale 10 --gan-scale 4
    .venv/bin/python scripts/budget_check.py precision sngan inverse_layout
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from inversion import reproduce, zeroshot as zs
from inversion.feedforward.evaluate import seed_rule
from inversion.feedforward.experiment import Study, train_generators
from inversion.models import zoo
from inversion.zeroshot.evaluate import constant_image_floor, evaluate_depths



def mini(notebook: str) -> dict:
    return reproduce.parameters(notebook, "mini")


def _main_kind() -> str:
    """Notebook 05's main synthetic data kind, as its last mini run chose it (else "mix")."""
    import json

    metrics = Path(__file__).resolve().parents[1] / "figures" / "mini" / "05_zero_shot_inversion" / "metrics.json"
    return json.loads(metrics.read_text())["main_kind"] if metrics.is_file() else "mix"


def settings_table(per_seed: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and seed std of each metric per ``setting`` (in order of appearance), and for every setting
    after the first whether it lies within the seed rule of the first."""
    table = per_seed.groupby("setting", sort=False)[metrics].agg(["mean", "std"]).T.unstack()
    labels = list(dict.fromkeys(per_seed["setting"]))
    reference = per_seed[per_seed["setting"] == labels[0]]
    for label in labels[1:]:
        other = per_seed[per_seed["setting"] == label]
        table[(f"{label}: within seed rule", "")] = [
            seed_rule(list(other[m]), list(reference[m]))["verdict"] == "no difference" for m in metrics]
    return table


def in_two_processes(fit, jobs: list) -> None:
    """Run ``fit(job)`` for every job in two spawned worker processes (each sets its own threads)."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(fit, jobs))


def feedforward(scale: int) -> pd.DataFrame:
    p = mini("02_feedforward_inversion")
    study = Study.setup("mini", p["n_train"], p["n_eval"], p["probe"], judge=p["judge"], seed=p["seed"])
    name = p["classifiers"][0]
    logits = study.logits(name, "test")
    steps, long = p["gan"]["steps"], p["gan"]["steps"] * scale
    # the recipe the mini profile used before: one learning rate for G and D, one D step, batch 32
    one_rate = {"lr": 1e-3, "lr_d": 1e-3, "n_dis": 1, "batch_size": 32}
    rows = []
    for label, overrides in [(f"mini recipe, {steps} steps", {}),
                             (f"mini recipe, {long} steps", {"steps": long}),
                             (f"lr 1e-3 for G and D, 1 D step, batch 32, {steps} steps", one_rate)]:
        inverse = study.gan(name, p["gan"], **overrides)
        d_loss = inverse.log["d_loss"][-50:]   # hinge: 2.0 = D scores real and generated images alike
        rows.append(study.summary(inverse.invert(logits, seed=p["seed"]), classifier=name, method=label,
                                  train_seconds=inverse.log.get("seconds"), final_d_loss=sum(d_loss) / len(d_loss)))
    rows.append(study.summary(torch.full_like(study.test.float_images(), 0.5), classifier="(none)",
                              method="constant grey"))
    return pd.DataFrame(rows)


def zeroshot(scale: int) -> pd.DataFrame:
    """Notebook 05's ResNet-20 inverses (divide and conquer + cycle, plain decoder) at 1x and ``scale`` x
    the mini steps, on the notebook's CIFAR-10 test images; the 1x rows load the notebook's cached inverses."""
    from inversion.data import cifar10

    p = mini("05_zero_shot_inversion")
    main_kind = _main_kind()
    model = zoo.load(p["cifar_model"], "mini")
    test = cifar10.load("test", n=p["n_test"], seed=p["seed"])
    x = test.float_images()
    floor = constant_image_floor(x)["psnr"]
    rows = []
    for factor in (1, scale):
        for mode in ("progressive", "plain_decoder"):
            config = zs.profile_config(p, main_kind, mode, len(p["cifar_cuts"]), scale=factor)
            chain, inverse, record = zs.fit_inverse(model, p["cifar_cuts"], config, "mini")
            depth_rows, _ = evaluate_depths(chain, inverse, x)
            rows += [{"method": mode, "data": main_kind, "steps": config.total_steps(len(chain)),
                      "train_seconds": record["train_seconds"], "constant floor psnr": floor,
                      "cifar10 copy": test.source, **r} for r in depth_rows]
    return pd.DataFrame(rows)


def precision(seeds=(0, 1, 2)) -> pd.DataFrame:
    """Notebook 02's CNN generator, plain fp32 vs bf16 + channels_last, over ``seeds``."""
    p = mini("02_feedforward_inversion")
    study = Study.setup("mini", p["n_train"], p["n_eval"], p["probe"], judge=p["judge"], seed=p["seed"])
    name, plain = p["classifiers"][0], {"precision": "fp32", "channels_last": False}
    settings = {"fp32": plain, "bf16 + channels_last": {"precision": "bf16", "channels_last": True}}
    train_generators([(study, name, {**o, "seed": s}) for s in seeds for o in settings.values()], p["gan"], workers=2)
    rows = []
    for label, overrides in settings.items():
        for s in seeds:
            inverse = study.gan(name, p["gan"], **overrides, seed=s)
            rows.append(study.summary(inverse.invert(study.logits(name, "test"), seed=p["seed"]), setting=label,
                                      seed=s, train_seconds=inverse.log.get("seconds")))
    per_seed = pd.DataFrame(rows)
    metrics = ["psnr", "ssim", "judge_agrees", "thumbnail_error", "center_error", "scale_error", "train_seconds"]
    return settings_table(per_seed, metrics)


SNGAN_SETTINGS = {"fp32": {}, "bf16": {"precision": "bf16"},
                  "bf16 + channels_last": {"precision": "bf16", "channels_last": True}}


def _sngan_config(overrides: dict, seed: int):
    from inversion.zeroshot import gan

    p = mini("06_gan_inversion_and_repair")
    return gan.GANConfig(latent_dim=p["latent_dim"], g_width=p["g_width"], d_width=p["d_width"], steps=p["gan_steps"],
                         batch_size=p["gan_batch"], n_train=p["gan_n_train"], seed=seed, image_size=p["image_size"],
                         dataset=p["dataset"], **overrides)


def _fit_sngan(job: tuple[dict, int]) -> None:
    from inversion.zeroshot import gan

    torch.set_num_threads(1)
    gan.fit_gan(_sngan_config(*job), "mini", progress=False)


def sngan(seeds=(1, 2, 3)) -> pd.DataFrame:
    """Notebook 06's SNGAN in fp32 vs bf16 (and channels_last) over ``seeds`` (not 0, the notebook's own
    GAN, trained on two threads in one process): sample quality and time."""
    from inversion.data import fashion_scenes
    from inversion.zeroshot import gan
    from inversion.zeroshot.evaluate import confidence, penultimate_features

    jobs = [(o, s) for s in seeds for o in SNGAN_SETTINGS.values()]
    in_two_processes(_fit_sngan, jobs)
    p = mini("06_gan_inversion_and_repair")
    judge = zoo.load(p["judge_model"], "mini")
    real = penultimate_features(judge, fashion_scenes.load("test").float_images(slice(0, 1000)))
    rows = []
    for label, overrides in SNGAN_SETTINGS.items():
        for s in seeds:
            G, _, record = gan.fit_gan(_sngan_config(overrides, s), "mini", progress=False)
            with torch.no_grad():
                samples = G(torch.randn(1000, G.latent_dim, generator=torch.Generator().manual_seed(100)))
            rows.append({"setting": label, "seed": s,
                         "frechet_distance": gan.frechet_distance(penultimate_features(judge, samples), real),
                         "judge_confidence": float(confidence(judge, samples).mean()),
                         "final_d_loss": sum(r["loss_d"] for r in record["log"][-3:]) / 3,
                         "train_seconds": record["train_seconds"]})
    per_seed = pd.DataFrame(rows)
    metrics = ["frechet_distance", "judge_confidence", "final_d_loss", "train_seconds"]
    return settings_table(per_seed, metrics)


INVERSE_SETTINGS = {"bf16": {"precision": "bf16"}, "bf16 + channels_last": {"precision": "bf16", "channels_last": True}}


def _inverse_config(overrides: dict, seed: int):
    p = {**mini("05_zero_shot_inversion"), **overrides, "seed": seed}
    return zs.profile_config(p, _main_kind(), "progressive")


def _fit_inverse(job: tuple[dict, int]) -> None:
    torch.set_num_threads(1)
    p = mini("05_zero_shot_inversion")
    zs.fit_inverse(zoo.load(p["cifar_model"], "mini"), p["cifar_cuts"], _inverse_config(*job), "mini", progress=False)


def inverse_layout(seeds=(1, 2, 3)) -> pd.DataFrame:
    """Notebook 05's ResNet-20 divide-and-conquer inverse (main data kind) in its bf16 and in bf16 +
    channels_last over ``seeds`` (not 0, the notebook's own, trained on two threads), two one-thread
    workers: PSNR / SSIM per depth on the notebook's CIFAR-10 test images, and training seconds."""
    from inversion.data import cifar10

    jobs = [(o, s) for s in seeds for o in INVERSE_SETTINGS.values()]
    in_two_processes(_fit_inverse, jobs)
    p = mini("05_zero_shot_inversion")
    model = zoo.load(p["cifar_model"], "mini")
    x = cifar10.load("test", n=p["n_test"], seed=p["seed"]).float_images()
    rows = []
    for label, overrides in INVERSE_SETTINGS.items():
        for s in seeds:
            chain, inverse, record = zs.fit_inverse(model, p["cifar_cuts"], _inverse_config(overrides, s), "mini",
                                                    progress=False)
            depth_rows, _ = evaluate_depths(chain, inverse, x)
            rows.append({"setting": label, "seed": s, "train_seconds": record["train_seconds"],
                         **{f"{m} {r['cut']}": r[m] for r in depth_rows for m in ("psnr", "ssim")}})
    per_seed = pd.DataFrame(rows)
    return settings_table(per_seed, [c for c in per_seed.columns if c not in ("setting", "seed")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checks", nargs="+", choices=["feedforward", "zeroshot", "precision", "sngan", "inverse_layout"])
    parser.add_argument("--scale", type=int, default=10, help="multiple of the mini profile's steps (default 10)")
    parser.add_argument("--gan-scale", type=int, default=4,
                        help="the same for the logit GAN, whose mini steps already cost minutes (default 4)")
    args = parser.parse_args()
    if min(args.scale, args.gan_scale) < 2:
        parser.error("--scale and --gan-scale must be at least 2")
    pd.set_option("display.width", 200)
    for check in args.checks:
        scale = args.gan_scale if check == "feedforward" else args.scale
        if check == "precision":
            print(f"\n== precision: fp32 vs the mini setting\n{precision().round(4).to_string()}")
            continue
        if check == "inverse_layout":
            print(f"\n== inverse_layout: notebook 05's inverse, bf16 vs bf16 + channels_last\n"
                  f"{inverse_layout().round(4).to_string()}")
            continue
        if check == "sngan":
            print(f"\n== sngan: notebook 06's SNGAN, fp32 vs bf16\n{sngan().round(4).to_string()}")
            continue
        table = {"feedforward": feedforward, "zeroshot": zeroshot}[check](scale)
        print(f"\n== {check}: mini budget vs {scale}x\n{table.round(3).to_string(index=False)}")


if __name__ == "__main__":
    main()
