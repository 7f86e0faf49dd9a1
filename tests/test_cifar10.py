"""CIFAR-10 loader: lookup order, archive hash check, errors, and the exact first 100 test images."""
import io
import tarfile
import urllib.error

import numpy as np
import pytest
import torch

from inversion.data import cifar10

HAVE_JPEG = cifar10.find_jpeg() is not None and cifar10.find_exact() is None


@pytest.fixture
def empty_places(tmp_path, monkeypatch):
    """No copy anywhere: data/ and the shared assets point at empty folders."""
    monkeypatch.setenv("INVERSION_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("INVERSION_ROOT", str(tmp_path / "repo"))
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.delenv("CIFAR10_JPEG", raising=False)
    return tmp_path


def _fake_batches(folder):
    (folder / cifar10.BATCHES).mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / cifar10.BATCHES / name).write_bytes(b"")


def _fake_archive(path):
    with tarfile.open(path, "w:gz") as tar:
        data = b"not a jpeg"
        info = tarfile.TarInfo("test/cat/0000.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_lookup_order_exact_before_jpeg(empty_places, monkeypatch):
    archive = empty_places / "cifar10-jpeg.tar.gz"
    _fake_archive(archive)
    monkeypatch.setenv("CIFAR10_JPEG", str(archive))
    assert cifar10.locate(download=False) == ("jpeg", archive)
    # an exact copy under data/ wins over the archive; CIFAR10_DIR wins over data/
    _fake_batches(empty_places / "data")
    assert cifar10.locate(download=False) == ("exact", empty_places / "data")
    named = empty_places / "elsewhere"
    _fake_batches(named)
    monkeypatch.setenv("CIFAR10_DIR", str(named / cifar10.BATCHES))
    assert cifar10.locate(download=False) == ("exact", named)


def test_jpeg_archive_hash_is_checked(empty_places, monkeypatch):
    archive = empty_places / "other.tar.gz"
    _fake_archive(archive)
    monkeypatch.setenv("CIFAR10_JPEG", str(archive))
    with pytest.raises(ValueError, match="sha256"):
        cifar10.load("test")
    assert not cifar10.cache_file("test").exists()


def test_offline_without_a_copy_says_how_to_get_one(empty_places, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(FileNotFoundError) as info:
        cifar10.load("train")
    message = str(info.value)
    assert "download=True" in message and "CIFAR10_DIR" in message and "CIFAR10_JPEG" in message
    with pytest.raises(FileNotFoundError, match="exact first 100"):
        cifar10.exact_first100()
    with pytest.raises(FileNotFoundError, match="CIFAR10_JPEG"):
        cifar10.locate(download=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        cifar10.load("validation")
    with pytest.raises(ValueError, match="n must be"):
        cifar10.load("test", n=0)


@pytest.mark.skipif(not HAVE_JPEG, reason="the offline JPEG copy is not on this machine")
def test_jpeg_copy_against_the_exact_first100():
    """Every exact test image has its JPEG twin (same label) about 6/255 away; subsets are seeded."""
    exact = cifar10.exact_first100()
    assert exact.source == "exact" and exact.images.shape == (100, 3, 32, 32)
    assert exact.images.dtype == torch.uint8 and exact.labels.dtype == torch.int64
    test = cifar10.load("test")
    assert test.source == "jpeg" and len(test) == 10_000 and test.images.dtype == torch.uint8
    assert test.labels[:20].tolist() == list(range(10)) * 2  # image number first, class second
    dist = torch.cdist(exact.float_images().flatten(1), test.float_images().flatten(1))
    nearest = dist.argmin(1)
    assert torch.equal(test.labels[nearest], exact.labels)
    mean_abs = (test.images[nearest].float() - exact.images.float()).abs().mean().item()
    assert 3 < mean_abs < 10  # lossy, but the same pictures (README: ~5.9/255)
    a, b = cifar10.load("test", n=50, seed=3), cifar10.load("test", n=50, seed=3)
    assert torch.equal(a.images, b.images) and not torch.equal(a.labels, cifar10.load("test", n=50, seed=4).labels)
    assert a.float_images().max() <= 1 and a.float_images(slice(0, 2)).shape == (2, 3, 32, 32)
    assert np.isclose(test.labels.bincount().float().std().item(), 0)
