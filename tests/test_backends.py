"""lift3d.backends: what resolve_backends decides on this CPU machine (auto -> torch/torch; explicit nerfacc runs
nerfacc's batched code; explicit tcnn, or nerfacc without nerfacc, is a clear error), the one log line, and a model
built with the nerfacc backend rendering bit for bit what the torch backend renders (so the CPU default, the twin,
reproduces runs made when nerfacc's batched function ran on CPU)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import lift3d.backends as backends_module
from lift3d.backends import Backends, BackendUnavailable, resolve_backends
from lift3d.fields.heads import HeadConfig
from lift3d.fields.radiance import RadianceFieldConfig
from lift3d.models import LiftModel, ModelConfig


def test_auto_on_cpu_is_torch_for_both_and_says_why():
    b = resolve_backends("cpu")
    assert (b.volume_rendering, b.hash_grid, b.device) == ("torch", "torch", "cpu")
    line = b.describe()
    assert line.startswith("backends: volume rendering torch (device cpu: nerfacc's batched path would run the same")
    assert "hash grid torch (device cpu: tinycudann is CUDA-only), device cpu" in line
    assert b == Backends(
        volume_rendering="torch",
        hash_grid="torch",
        device="cpu",
        volume_rendering_note=b.volume_rendering_note,
        hash_grid_note=b.hash_grid_note,
    )


def test_explicit_torch_is_always_honoured():
    for device in ("cpu", "cuda", "cuda:1"):
        b = resolve_backends(device, "torch", "torch")
        assert (b.volume_rendering, b.hash_grid, b.device) == ("torch", "torch", device)
        assert b.describe() == (
            f"backends: volume rendering torch (requested), hash grid torch (requested), device {device}"
        )


def test_explicit_nerfacc_on_cpu_runs_its_batched_code_and_says_so():
    nerfacc = pytest.importorskip("nerfacc")
    b = resolve_backends("cpu", volume_rendering="nerfacc")
    assert b.volume_rendering == "nerfacc" and b.hash_grid == "torch"
    assert (
        f"volume rendering nerfacc (nerfacc {nerfacc.__version__} batched path: plain torch ops on cpu)" in b.describe()
    )


def test_explicit_tcnn_on_cpu_names_tinycudann_cuda_and_the_fix():
    with pytest.raises(BackendUnavailable) as err:
        resolve_backends("cpu", hash_grid="tcnn")
    message = str(err.value)
    assert "tinycudann runs only on a CUDA device" in message and "the device is cpu" in message
    assert "--device cuda" in message and "model.radiance.hash_implementation to 'auto' or 'torch'" in message


def test_explicit_tcnn_on_cuda_without_tinycudann_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tinycudann", None)  # `import tinycudann` fails as where it is not installed
    with pytest.raises(BackendUnavailable, match=r"tinycudann not installed.*pip install.*tiny-cuda-nn"):
        resolve_backends("cuda", volume_rendering="torch", hash_grid="tcnn")
    b = resolve_backends("cuda", volume_rendering="torch", hash_grid="auto")
    assert b.hash_grid == "torch" and "hash grid torch (tinycudann not installed)" in b.describe()


def test_nerfacc_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "nerfacc", None)  # `import nerfacc` fails as where it is not installed
    with pytest.raises(BackendUnavailable, match=r"nerfacc does not import.*pip install nerfacc==0\.5\.3"):
        resolve_backends("cpu", volume_rendering="nerfacc")
    b = resolve_backends("cuda", volume_rendering="auto", hash_grid="torch")
    assert b.volume_rendering == "torch" and b.volume_rendering_note == "nerfacc not installed"
    assert resolve_backends("cpu").volume_rendering == "torch"  # auto on CPU never needs nerfacc


def test_nerfacc_on_cuda_needs_its_cuda_extension(monkeypatch):
    pytest.importorskip("nerfacc")
    # The real probe imports nerfacc's extension, which may start a JIT build of several minutes where nvcc exists;
    # here the machine's answer is set: the extension does not load (the probe itself runs in tests/gpu).
    monkeypatch.setattr(
        backends_module,
        "_nerfacc_cuda_extension_problem",
        lambda: "its CUDA extension does not load: OSError: CUDA_HOME is not set",
    )
    b = resolve_backends("cuda", hash_grid="torch")
    assert b.volume_rendering == "torch" and "CUDA_HOME is not set" in b.volume_rendering_note
    with pytest.raises(BackendUnavailable, match=r"'nerfacc' was requested on cuda.*CUDA_HOME.*'auto' or 'torch'"):
        resolve_backends("cuda", volume_rendering="nerfacc")
    monkeypatch.setattr(backends_module, "_nerfacc_cuda_extension_problem", lambda: "")
    b = resolve_backends("cuda:0", hash_grid="torch")
    assert b.volume_rendering == "nerfacc" and "CUDA extension loaded" in b.describe()


def test_unknown_requests_are_value_errors():
    with pytest.raises(ValueError, match="model.volume_rendering_backend='fast'"):
        resolve_backends("cpu", volume_rendering="fast")
    with pytest.raises(ValueError, match="model.radiance.hash_implementation='cuda'"):
        resolve_backends("cpu", hash_grid="cuda")


# ------------------------------------------------------------------------------------------------ model
def _model(backends=None, backbone="tensorf", **kw) -> LiftModel:
    torch.manual_seed(0)
    cfg = ModelConfig(
        radiance=RadianceFieldConfig(
            backbone=backbone,
            grid_resolution=8,
            density_components=2,
            appearance_components=2,
            appearance_dim=4,
            hash_levels=2,
            hash_log2_table_size=8,
            hash_max_resolution=32,
            color_hidden_dim=8,
            color_hidden_layers=1,
            density_shift=0.0,
        ),
        semantic=HeadConfig(hidden_dim=8, hidden_layers=1),
        instance=HeadConfig(hidden_dim=8, hidden_layers=1),
        num_samples=16,
        num_samples_render=16,
        depth_guided_samples=0,
        occupancy_resolution=4,
        **kw,
    )
    return LiftModel(cfg, num_classes=3, aabb=np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]), backends=backends)


def test_model_resolves_its_config_when_not_given_backends():
    assert _model().backends == resolve_backends("cpu")
    assert _model(volume_rendering_backend="torch").backends.volume_rendering_note == "requested"
    given = Backends(volume_rendering="nerfacc", hash_grid="torch", device="cpu")
    assert _model(given).backends is given


@pytest.mark.parametrize("backbone", ["tensorf", "hashgrid"])
def test_model_renders_bit_identically_with_nerfacc_and_torch_on_cpu(monkeypatch, backbone):
    nerfacc = pytest.importorskip("nerfacc")
    calls = []
    real = nerfacc.render_weight_from_density

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(nerfacc, "render_weight_from_density", spy)
    gen = torch.Generator().manual_seed(1)
    origins = torch.tensor([[0.0, 0.0, -3.0]]).expand(32, 3) + 0.2 * torch.randn(32, 3, generator=gen)
    dirs = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, 1.0]]) + 0.3 * torch.randn(32, 3, generator=gen))
    outputs = []
    for vr in ("torch", "nerfacc"):
        model = _model(Backends(volume_rendering=vr, hash_grid="torch"), backbone)
        samples = model.sample_rays(origins, dirs, None, jitter=False, with_color=True)
        loss = samples.rgb.square().sum() + samples.depth.sum()
        loss.backward()
        grads = [p.grad.clone() for p in model.radiance.parameters() if p.grad is not None]
        outputs.append((samples.weights.detach(), samples.rgb.detach(), grads))
    assert calls == [1]  # exactly the nerfacc model's one rendering call went through nerfacc
    (w_t, rgb_t, g_t), (w_n, rgb_n, g_n) = outputs
    assert float(w_t.sum()) > 1.0  # the rays see something
    assert torch.equal(w_t, w_n) and torch.equal(rgb_t, rgb_n)
    assert len(g_t) == len(g_n) > 0 and all(torch.equal(a, b) for a, b in zip(g_t, g_n))


def test_trainer_resolves_backends_once_and_logs_one_line(tiny_scene_dir, tmp_path):
    from lift3d.data.loading import load_scene
    from lift3d.engine.trainer import Trainer
    from lift3d.presets import get_preset

    lines: list[str] = []
    trainer = Trainer(
        load_scene(tiny_scene_dir), get_preset("tiny"), tmp_path / "run", progress=False, log=lines.append
    )
    backend_lines = [line for line in lines if line.startswith("backends:")]
    assert backend_lines == [trainer.backends.describe()]
    assert trainer.model.backends is trainer.backends  # the model uses the resolution, it does not redo it
    assert (trainer.backends.volume_rendering, trainer.backends.hash_grid) == ("torch", "torch")
