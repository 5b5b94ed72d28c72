"""The CUDA path: bf16 autocast, fused attention, torch.compile and the KV cache on a GPU.

These run only where CUDA exists; elsewhere pytest skips them and says why.
"""

import pytest
import torch
from conftest import tiny_config

import taller
from taller.models import Transformer
from taller.models.transformer import TransformerConfig
from taller.runs.metrics import read_metrics
from taller.training.device import autocast_for, pick_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no hay GPU CUDA en esta máquina")


def gpu_model(**kw) -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=20, block_size=32, d_model=64, n_heads=4, n_layers=2, d_ff=128, dropout=0.0, **kw
    )
    return Transformer(cfg).cuda().eval()


def test_auto_picks_cuda_and_bf16_autocast():
    device = pick_device("auto")
    assert device.type == "cuda"
    with autocast_for(device, "auto"):
        y = torch.nn.Linear(8, 8).cuda()(torch.randn(2, 8, device="cuda"))
    assert y.dtype == torch.bfloat16


def test_fused_and_explicit_attention_agree_on_the_gpu():
    fused, explicit = gpu_model(attention="fused"), gpu_model(attention="explicit")
    explicit.load_state_dict(fused.state_dict())
    x = torch.randint(0, 20, (4, 32), device="cuda")
    with torch.no_grad():
        assert torch.allclose(fused(x), explicit(x), atol=1e-4)
        with torch.autocast("cuda", dtype=torch.bfloat16):  # bf16 keeps ~3 significant digits
            assert torch.allclose(fused(x).float(), explicit(x).float(), atol=5e-2)


def test_kv_cache_matches_the_full_pass_on_the_gpu():
    m = gpu_model()
    x = torch.randint(0, 20, (2, 12), device="cuda")
    with torch.no_grad():
        logits, state = m.start(x[:, :4])
        for t in range(4, 12):
            logits, state = m.step(x[:, t : t + 1], state)
            assert torch.allclose(logits, m(x[:, : t + 1])[:, -1], atol=1e-4)


@pytest.mark.parametrize("compile", [False, True])
def test_training_on_the_gpu_learns_saves_and_loads_on_the_cpu(corpus_file, tmp_path, compile):
    cfg = tiny_config(corpus_file, device="cuda", dtype="auto", compile=compile, max_steps=60)
    run = taller.train(cfg, tmp_path / "run", progress=False)
    losses = [m["train_loss"] for m in read_metrics(run.dir) if "train_loss" in m]
    assert losses[-1] < losses[0]
    loaded = taller.load_run(run.dir)  # weights were saved as plain CPU tensors
    assert next(loaded.model.parameters()).device.type == "cpu"
    assert loaded.generate("No hay ", 1, max_chars=20, seed=0)[0].text.startswith("No hay ")
