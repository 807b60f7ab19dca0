"""Fine-tuning an extracted sub-network with distillation; exact resume; foreign output dirs."""

from __future__ import annotations

import pytest
import torch

from nas.config import load_config
from nas.errors import EdgenasError
from nas.finetune import FinetuneConfig, finetune_subnet
from nas.training import TrainConfig, load_trained, train


@pytest.fixture()
def trained(tiny_config, tmp_path):
    cfg = load_config(TrainConfig, tiny_config())
    train(cfg, tmp_path / "run", progress=False)
    return load_trained(tmp_path / "run", device="cpu")


@pytest.mark.slow  # fine-tunes twice, ~6-8 s
def test_finetune_trains_the_copy_and_resumes_exactly_after_an_interrupt(trained, tmp_path, monkeypatch):
    import nas.finetune as ft

    arch = trained.space.smallest()
    cfg = FinetuneConfig(epochs=1, batch_size=16, lr=0.05, checkpoint_every=4)
    torch.manual_seed(0)
    full = finetune_subnet(trained, arch, cfg, tmp_path / "a", progress=False)
    assert full.steps == len(trained.splits.train) // 16 and full.resumed_from == 0
    assert full.inherited.samples == full.finetuned.samples == len(trained.splits.validation)
    # fine-tuning changed the copy, not the supernet
    inherited = trained.supernet.extract(arch).state_dict()
    assert any(not torch.equal(inherited[k], v) for k, v in full.model.state_dict().items())

    # Ctrl-C during step 6: the finished steps are saved, the same call resumes from there
    calls = {"n": 0}
    real = ft.soft_cross_entropy

    def interrupt_at_step_6(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "soft_cross_entropy", interrupt_at_step_6)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        finetune_subnet(trained, arch, cfg, tmp_path / "b", progress=False)
    monkeypatch.setattr(ft, "soft_cross_entropy", real)
    resumed = finetune_subnet(trained, arch, cfg, tmp_path / "b", progress=False)
    assert resumed.resumed_from == 5
    for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    done = finetune_subnet(trained, arch, cfg, tmp_path / "b", progress=False)
    assert done.resumed_from == full.steps  # finished: read back, not run again


@pytest.mark.slow  # trains a supernet, then fine-tunes: ~6 s with its fixture
def test_finetune_refuses_an_output_dir_of_another_arch(trained, tmp_path):
    cfg = FinetuneConfig(epochs=0)
    finetune_subnet(trained, trained.space.smallest(), FinetuneConfig(epochs=1, batch_size=64), tmp_path / "x", progress=False)
    with pytest.raises(EdgenasError, match="another arch"):
        finetune_subnet(trained, trained.space.largest(), cfg, tmp_path / "x", progress=False)
