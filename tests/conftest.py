"""Shared test setup: deterministic torch, few threads, and a quiet matplotlib backend."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
