"""Which implementation a kernel call runs: the Triton kernel or its pure-torch reference.

Every kernel of :mod:`inversion.kernels` takes ``backend=``:

* ``"auto"`` (default) - the Triton kernel when the input tensors live on a CUDA device and
  Triton imports; the torch reference everywhere else (CPU, MPS, no Triton);
* ``"torch"`` - always the reference;
* ``"triton"`` - always the kernel; an error when Triton is missing, or when the tensors are not on
  CUDA and Triton is not in interpreter mode (``TRITON_INTERPRET=1``, which runs kernels on CPU
  tensors through Triton's interpreter: slow, used by the tests).

The interpreter flag is read when a kernel is first compiled for that mode (see
:func:`interpreting`), so tests can switch it on for one test with ``monkeypatch.setenv``.
"""
from __future__ import annotations

import functools
import os

import torch

BACKENDS = ("auto", "torch", "triton")


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """Whether ``import triton`` works here (it does not say whether a GPU is present)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install failing at import time
        return False
    return True


def interpreting() -> bool:
    """Whether Triton kernels run through the interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def resolve(backend: str, *tensors: torch.Tensor) -> str:
    """``"torch"`` or ``"triton"``: the implementation a call with ``tensors`` runs."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    on_cuda = all(t.is_cuda for t in tensors)
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "triton" if on_cuda and triton_available() else "torch"
    if not triton_available():
        raise RuntimeError("backend='triton' needs the triton package (pip install triton)")
    if not on_cuda and not interpreting():
        devices = sorted({str(t.device) for t in tensors})
        raise RuntimeError(f"backend='triton' needs CUDA tensors (got {devices}); set TRITON_INTERPRET=1 "
                           f"to run the kernel on the CPU through Triton's interpreter")
    return "triton"
