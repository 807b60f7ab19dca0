"""Shared test settings: few threads (CI has 2 cores), deterministic seeds."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Ray 2.60 turns token authentication on for `ray start` once ~/.ray/auth_token exists (a
# local ray.init writes it), and then refuses drivers that do not send the token. The tests'
# clusters live on loopback for the test's duration: run them without it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
