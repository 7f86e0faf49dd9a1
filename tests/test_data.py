import dataclasses
import gzip
import struct

import numpy as np
import pytest
import torch

from inversion.data import fashion_mnist, fashion_scenes, image_folder, photos


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", array)
    assert np.array_equal(fashion_mnist.read_idx(tmp_path / "x.gz"), array)


def test_read_idx_rejects_truncated(tmp_path):
    array = np.zeros((4, 5), dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, 2) + struct.pack(">II", 4, 6)
    with gzip.open(tmp_path / "bad.gz", "wb") as f:
        f.write(header + array.tobytes())
    with pytest.raises(ValueError, match="truncated"):
        fashion_mnist.read_idx(tmp_path / "bad.gz")


def test_fashion_mnist_shapes():
    images, labels = fashion_mnist.load("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))


def test_fashion_mnist_named_dir_wins(tmp_path):
    for img, lab in fashion_mnist.FILES.values():
        _write_idx(tmp_path / img, np.full((3, 28, 28), 7))
        _write_idx(tmp_path / lab, np.array([1, 2, 3]))
    images, labels = fashion_mnist.load("train", root=tmp_path)
    assert images.shape == (3, 28, 28) and labels.tolist() == [1, 2, 3]


def test_fashion_mnist_missing_gives_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setenv("INVERSION_DATA", str(tmp_path))
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.load("test")
    with pytest.raises(ValueError, match="split"):
        fashion_mnist.load("validation")


@pytest.fixture(scope="module")
def scenes():
    return fashion_scenes.generate("test", seed=3, n=400)


def test_scenes_deterministic(scenes):
    again = fashion_scenes.generate("test", seed=3, n=400)
    assert torch.equal(scenes.images, again.images) and torch.equal(scenes.center, again.center)
    other = fashion_scenes.generate("test", seed=4, n=400)
    assert not torch.equal(scenes.images, other.images)


def test_scenes_shapes_and_ranges(scenes):
    assert scenes.images.shape == (400, 3, 32, 32) and scenes.images.dtype == torch.uint8
    for name in ("foreground", "background"):
        colour = getattr(scenes, name)
        assert colour.shape == (400, 3) and colour.min() >= 0 and colour.max() <= 1
    assert ((scenes.foreground - scenes.background).norm(dim=1) >= 0.4 - 1e-6).all()
    lo, hi = scenes.recipe.scale_range
    assert scenes.scale.min() >= lo and scenes.scale.max() <= hi
    half = scenes.scale * 32 / 2
    assert (scenes.center >= half[:, None] - 1e-4).all() and (scenes.center <= 32 - half[:, None] + 1e-4).all()


def test_background_factor_is_what_corners_show(scenes):
    x = scenes.float_images()
    half = scenes.scale * 32 / 2
    corner_free = (scenes.center[:, 0] - half > 1) | (scenes.center[:, 1] - half > 1)
    assert corner_free.sum() > 100
    error = (x[corner_free, :, 0, 0] - scenes.background[corner_free]).abs().max()
    assert error <= 1.0 / 255 + 1e-6


def test_foreground_factor_is_what_strongest_pixels_show(scenes):
    x = scenes.float_images()
    distance = (x - scenes.background[:, :, None, None]).norm(dim=1).flatten(1)
    strongest = distance.argmax(1)
    pixels = x.flatten(2)[torch.arange(len(x)), :, strongest]
    error = (pixels - scenes.foreground).norm(dim=1)
    assert error.median() < 0.05 and (error < 0.2).float().mean() > 0.95


def test_position_and_scale_bound_the_garment(scenes):
    x = scenes.float_images()
    differs = (x - scenes.background[:, :, None, None]).abs().amax(1) > 0.1   # (N, H, W)
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    half = scenes.scale * 32 / 2
    for i in range(len(x)):
        if differs[i].any():
            assert (xs[differs[i]] - scenes.center[i, 0]).abs().max() <= half[i] + 1
            assert (ys[differs[i]] - scenes.center[i, 1]).abs().max() <= half[i] + 1


def test_scenes_cache_roundtrip_and_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSION_DATA", str(tmp_path))
    first = fashion_scenes.load("test", n=50)
    files = list((tmp_path / "fashion-scenes").glob("*.safetensors"))
    assert len(files) == 1
    again = fashion_scenes.load("test", n=50)
    assert torch.equal(first.images, again.images)
    # a recipe change is a new cache entry
    fashion_scenes.load("test", n=50, recipe=fashion_scenes.SceneRecipe(size=24))
    assert len(list((tmp_path / "fashion-scenes").glob("*.safetensors"))) == 2
    # corrupt the stored pixels: the content hash no longer matches, so it is regenerated
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open
    tensors = load_file(files[0])
    with safe_open(str(files[0]), "pt") as handle:
        meta = handle.metadata()
    tensors["images"] = torch.zeros_like(tensors["images"])
    save_file(tensors, str(files[0]), metadata=meta)
    repaired = fashion_scenes.load("test", n=50)
    assert torch.equal(repaired.images, first.images)


def test_photos():
    images, names = photos.load(32)
    assert images.shape == (len(photos.PHOTOS) * len(photos.CROPS), 3, 32, 32)
    assert images.min() >= 0 and images.max() <= 1 and len(set(names)) == len(names)
    assert images.std() > 0.1


def test_image_folder_reads_a_seeded_centre_cropped_subset(tmp_path, monkeypatch):
    from PIL import Image

    for c, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        folder = tmp_path / "val" / f"n0{c}"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40 + 10 * i, 30), colour).save(folder / f"{i}.png")
    monkeypatch.setenv("IMAGENET_DIR", str(tmp_path))
    images, labels = image_folder.load("val", n=4, size=16, progress=False)
    again, labels_again = image_folder.load("val", n=4, size=16, progress=False)
    assert images.shape == (4, 3, 16, 16) and images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, again) and torch.equal(labels, labels_again)
    small, _ = image_folder.load("val", n=4, size=16, uint8=True, progress=False)
    assert small.dtype == torch.uint8 and torch.equal(small.float() / 255, images)
    # class folders in sorted order: n00 is red, n01 is blue
    assert all(images[k, 0].mean() > 0.9 if labels[k] == 0 else images[k, 2].mean() > 0.9 for k in range(4))
    # a model's own data config: its size, crop and interpolation (the ViT-B/16's: 224 px, crop 0.9, bicubic)
    from inversion.models import get_spec

    config = get_spec("imagenet-vit-b16").config
    assert (config.input_size[-1], config.crop_pct, config.interpolation) == (224, 0.9, "bicubic")
    vit_images, _ = image_folder.load("val", n=1, config=config, progress=False)
    assert vit_images.shape == (1, 3, 224, 224)
    tiny = dataclasses.replace(config, input_size=(3, 16, 16), interpolation="nearest", crop_pct=1.0)
    assert torch.equal(image_folder.load("val", n=4, config=tiny, progress=False)[0],
                       image_folder.load("val", n=4, size=16, crop_fraction=1.0, interpolation="nearest",
                                         progress=False)[0])


def test_image_folder_missing_gives_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGENET_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("INVERSION_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="IMAGENET_DIR"):
        image_folder.load("val", n=2)
