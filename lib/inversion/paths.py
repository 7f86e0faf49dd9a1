"""Where the study keeps things: the repository root, data, checkpoints, figures, runs.

Every location can be moved with an environment variable, so a user can point the study at
a big disk (``INVERSION_DATA``) or at a folder of already-downloaded files; ``INVERSION_FIGURES``
moves the results folder.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def repo_root() -> Path:
    """The study's root folder (the one holding ``notebooks/`` and ``pyproject.toml``).

    ``INVERSION_ROOT`` wins; otherwise the first parent of the working directory that holds
    both, and finally the checkout this package was installed from (editable install).
    """
    env = os.environ.get("INVERSION_ROOT")
    if env:
        return Path(env).resolve()
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    return Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Downloaded and generated data, checkpoints and notebook runs (never committed)."""
    return Path(os.environ.get("INVERSION_DATA", repo_root() / "data")).resolve()


def checkpoint_dir(profile: str) -> Path:
    return data_dir() / "checkpoints" / profile


def figures_root() -> Path:
    """The folder holding one results folder per profile: ``INVERSION_FIGURES`` or ``figures/``.

    Moved only by runs that must not overwrite a profile's results, e.g. the paper-shaped dry
    run (``scripts/paper_dry.py``), which writes its ``paper`` results elsewhere.
    """
    env = os.environ.get("INVERSION_FIGURES")
    return Path(env).resolve() if env else repo_root() / "figures"


def figures_dir(profile: str) -> Path:
    """Results (figures, tables, ``metrics.json``, executed notebooks) of one profile."""
    return figures_root() / profile


def runs_dir(profile: str) -> Path:
    return data_dir() / "runs" / profile


@contextmanager
def written_atomically(path: Path | str) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; it replaces ``path`` when the block ends without error.

    A run stopped mid-write leaves the previous file (or none), never a truncated one that a later
    run would take for a finished checkpoint::

        with written_atomically(path) as tmp:
            torch.save(state, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256(path: Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_or_download(file: str, folders: list[Path], url: str, sha256_prefix: str, env_var: str,
                     download: bool = True) -> Path:
    """``folder / file`` from the first of ``folders`` that holds it, else downloaded from ``url``
    into the last folder; its sha256 must start with ``sha256_prefix``. Offline, the error names
    the URL, the folders and the environment variable that adds a folder."""
    import urllib.request

    for folder in folders:
        if (folder / file).is_file():
            path = folder / file
            break
    else:
        where = [str(d) for d in folders]
        if not download:
            raise FileNotFoundError(f"{file} not found in {where}")
        path = folders[-1] / file
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            urllib.request.urlretrieve(url, path)
        except OSError as error:
            path.unlink(missing_ok=True)
            raise FileNotFoundError(f"{file} is not on this machine and could not be downloaded ({error}). "
                                    f"Download {url} into one of {where} or set {env_var}.") from error
    if not sha256(path).startswith(sha256_prefix):
        raise ValueError(f"{path}: sha256 does not start with {sha256_prefix}; the file is corrupt or another one")
    return path
