"""Offline, in the cloud: train the modular model and its selector on proxy data, then sharpen.

``pretrain`` trains modules, stem, head and selector together with noisy top-k gates and
a load-balancing loss (the squared coefficient of variation of each module's share of
the gate weight in a batch, Shazeer et al. 2017), so every module learns something.
``sharpen`` then trains on *sub-tasks* (batches of a few classes that appear together
on devices) with an extra penalty on the entropy of the batch's mean gate distribution:
a sub-task learns to use few modules, so a device's sub-model can be small.
``module_importance`` is a device's view: mean gate weight per module on its data.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nas.adapt.config import CloudSection
from search_spaces.modular import ModularNet


def load_balance_loss(gates: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of CV^2 of each module's total gate weight in the batch."""
    losses = []
    for g in gates:
        share = g.sum(0)
        losses.append(share.var() / (share.mean() ** 2 + 1e-10))
    return torch.stack(losses).mean()


def routing_entropy(gates: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the entropy of the batch-averaged gate distribution."""
    out = []
    for g in gates:
        p = g.mean(0).clamp_min(1e-8)
        out.append(-(p * p.log()).sum())
    return torch.stack(out).mean()


def _optimizer(net: ModularNet, lr: float, steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))


def _step(opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


def pretrain(net: ModularNet, x: np.ndarray, y: np.ndarray, cfg: CloudSection, seed: int,
             progress: bool = False) -> list[float]:
    """Train the whole cloud model on proxy data (``cfg``: the config's ``cloud`` section);
    returns the loss per step."""
    from tqdm import tqdm

    gen = np.random.default_rng([seed, 11])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt, sched = _optimizer(net, cfg.lr, cfg.pretrain_steps)
    net.train()
    losses = []
    for _ in tqdm(range(cfg.pretrain_steps), desc="cloud pretrain", disable=not progress, leave=False):
        idx = torch.from_numpy(gen.integers(0, len(yt), cfg.batch_size))
        logits, gates = net.forward_with_gates(xt[idx], noisy=True)
        loss = F.cross_entropy(logits, yt[idx]) + cfg.balance_weight * load_balance_loss(gates)
        _step(opt, sched, loss)
        losses.append(float(loss.detach()))
    return losses


def sharpen(net: ModularNet, x: np.ndarray, y: np.ndarray, cfg: CloudSection, classes_per_task: int, seed: int,
            progress: bool = False) -> list[float]:
    """Train on sub-task batches of ``classes_per_task`` classes so each sub-task routes to few
    modules; returns the entropy per step."""
    from tqdm import tqdm

    gen = np.random.default_rng([seed, 12])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    classes = np.unique(y)
    by_class = {int(c): np.flatnonzero(y == c) for c in classes}
    opt, sched = _optimizer(net, cfg.lr * 0.2, cfg.sharpen_steps)
    net.train()
    entropies = []
    m = min(classes_per_task, len(classes))
    for _ in tqdm(range(cfg.sharpen_steps), desc="cloud sharpen", disable=not progress, leave=False):
        task = gen.choice(classes, m, replace=False)
        idx = np.concatenate([gen.choice(by_class[int(c)], cfg.batch_size // m) for c in task])
        mixed = torch.from_numpy(gen.integers(0, len(yt), cfg.batch_size))
        logits, gates = net.forward_with_gates(xt[idx], noisy=False)
        _, mixed_gates = net.forward_with_gates(xt[mixed], noisy=True)
        entropy = routing_entropy(gates)
        loss = (F.cross_entropy(logits, yt[idx]) + cfg.sharpen_weight * entropy
                + cfg.balance_weight * load_balance_loss(mixed_gates))
        _step(opt, sched, loss)
        entropies.append(float(entropy.detach()))
    return entropies


@torch.no_grad()
def module_importance(net: ModularNet, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``(layers, modules + 1)`` mean gate weight per module over ``x`` (rows sum to 1)."""
    was = net.training
    net.eval()
    total = None
    for i in range(0, len(x), batch_size):
        gates = net.gates(torch.from_numpy(x[i : i + batch_size]))
        part = torch.stack([g.sum(0) for g in gates]).numpy()
        total = part if total is None else total + part
    net.train(was)
    return total / len(x)
