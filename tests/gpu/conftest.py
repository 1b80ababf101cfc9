"""tests/gpu: every CUDA path held to its pure-PyTorch reference, values and gradients. Skipped without CUDA.

Every test here is skipped (with the reason) when ``torch.cuda.is_available()`` is False; the nerfacc and
tinycudann fixtures also skip, with the reason :func:`lift3d.backends.resolve_backends` gives, when that library's
CUDA path cannot run on the machine. See README.md for the command.
"""

from __future__ import annotations

import pytest
import torch

from lift3d.backends import BackendUnavailable, resolve_backends

CUDA = "cuda"
"""The device every test here runs on."""


@pytest.fixture(autouse=True)
def _needs_cuda():
    if not torch.cuda.is_available():
        pytest.skip("tests/gpu needs a CUDA device: torch.cuda.is_available() is False")


@pytest.fixture
def nerfacc_cuda():
    """The nerfacc module, once resolve_backends has confirmed that its CUDA extension loads (skip otherwise)."""
    try:
        backends = resolve_backends(CUDA, volume_rendering="nerfacc", hash_grid="torch")
    except BackendUnavailable as err:
        pytest.skip(f"nerfacc's CUDA path cannot run here: {err}")
    assert backends.volume_rendering == "nerfacc" and "CUDA extension loaded" in backends.describe()
    import nerfacc

    return nerfacc


@pytest.fixture
def tcnn_cuda():
    """``"tcnn"`` once resolve_backends has confirmed that tinycudann imports on CUDA (skip otherwise)."""
    try:
        backends = resolve_backends(CUDA, volume_rendering="torch", hash_grid="tcnn")
    except BackendUnavailable as err:
        pytest.skip(f"tinycudann cannot run here: {err}")
    return backends.hash_grid
