"""The Nebula modular network: a stem, layers of interchangeable modules, a selector, a head.

One class serves both the cloud model (every module) and a device's sub-model (the
modules of its arch); parameter names are the same in both (``layers.2.5.conv1.weight``
is module 5 of layer 2 everywhere), so a sub-model's weights go back to the cloud model
by name. Each layer computes ``x + sum_k g_k(x) * module_k(x)``: the selector's gates
``g`` are per sample, non-zero on the top-k modules the sub-model holds; the skip module
contributes nothing (the input passes through), so choosing it costs nothing. A module no
sample of a batch is routed to is not run (its output would be multiplied by zero), so
it gets no gradient and its batch-norm statistics stay as they were (``run_unrouted =
True`` runs every held module, as the space's FLOPs count them).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.modular.arch import ModularArch
from search_spaces.modular.config import ModularConfig


def _conv_bn(cfg: ModularConfig, cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, cfg.kernel_size, padding=cfg.padding, bias=False),
            nn.BatchNorm2d(cout)]


class Stem(nn.Sequential):
    """Input channels to the stream width (shared by every sub-model)."""

    def __init__(self, cfg: ModularConfig, channels: int | None = None) -> None:
        super().__init__(*_conv_bn(cfg, cfg.in_channels, channels or cfg.channels), nn.ReLU())


class ShrunkModule(nn.Module):
    """A residual conv block with a ``1/modules`` share of the dense block's hidden width."""

    def __init__(self, cfg: ModularConfig, channels: int | None = None, hidden: int | None = None) -> None:
        super().__init__()
        c, h = channels or cfg.channels, hidden or cfg.module_channels
        self.conv1, self.bn1 = _conv_bn(cfg, c, h)
        self.conv2, self.bn2 = _conv_bn(cfg, h, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


class Head(nn.Sequential):
    """Global average pooling and the classifier."""

    def __init__(self, cfg: ModularConfig, channels: int | None = None) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels or cfg.channels, cfg.num_classes))


class Selector(nn.Module):
    """The unified module selector: a small embedding net and one gate per layer.

    ``logits(x)`` gives per-layer gate logits over the ``modules + 1`` modules (skip last);
    in training, Gaussian noise scaled by a learned softplus is added (noisy top-k gating,
    Shazeer et al. 2017), which spreads load while the gates are still undecided.
    """

    def __init__(self, cfg: ModularConfig) -> None:
        super().__init__()
        ph, pw = cfg.pooled
        self.pool = nn.AdaptiveAvgPool2d((ph, pw))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(cfg.in_channels * ph * pw, cfg.embed_dim), nn.ReLU())
        self.gates = nn.ModuleList(nn.Linear(cfg.embed_dim, cfg.modules + 1) for _ in range(cfg.layers))
        self.noise = nn.ModuleList(nn.Linear(cfg.embed_dim, cfg.modules + 1) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding of ``x`` (what the gates read)."""
        return self.embed(self.pool(x))

    def logits(self, x: torch.Tensor, noisy: bool = False, layers: list[int] | None = None) -> list[torch.Tensor]:
        """Gate logits of ``layers`` (default: every layer), in that order."""
        e = self(x)
        out = []
        for i in range(len(self.gates)) if layers is None else layers:
            z = self.gates[i](e)
            if noisy:
                z = z + torch.randn_like(z) * F.softplus(self.noise[i](e))
            out.append(z)
        return out


def top_k_gates(logits: torch.Tensor, available: torch.Tensor, k: int) -> torch.Tensor:
    """Softmax over the ``k`` largest logits among ``available`` modules; zeros elsewhere."""
    masked = logits.masked_fill(~available, float("-inf"))
    k = min(k, int(available.sum()))
    top, idx = masked.topk(k, dim=1)
    return torch.zeros_like(logits).scatter(1, idx, torch.softmax(top, dim=1))


class ModularNet(nn.Module):
    """The cloud model (``arch=None``: every module) or a sub-model holding ``arch``'s modules.

    ``width_ratio`` < 1 scales the stream and module widths (HeteroFL's width-reduced
    models of the same network: their tensors are prefix slices of the full ones).
    """

    def __init__(self, cfg: ModularConfig, arch: ModularArch | None = None, width_ratio: float = 1.0) -> None:
        super().__init__()
        if arch is None:
            arch = ModularArch(tuple(tuple(range(cfg.modules + 1)) for _ in range(cfg.layers)))
        if len(arch.layers) != cfg.layers or max(max(layer) for layer in arch.layers) > cfg.skip:
            raise ValueError(f"arch {arch} does not fit {cfg.layers} layers of {cfg.modules}+1 modules")
        self.config, self.arch, self.width_ratio = cfg, arch, width_ratio
        self.run_unrouted = False  # True: run every held module (cost counting, tracing)
        c = max(1, round(cfg.channels * width_ratio))
        h = max(1, round(cfg.module_channels * width_ratio))
        self.stem = Stem(cfg, c)
        self.layers = nn.ModuleList(
            nn.ModuleDict({str(k): ShrunkModule(cfg, c, h) for k in layer if k != cfg.skip})
            for layer in arch.layers
        )
        self.selector = Selector(cfg)
        self.head = Head(cfg, c)
        available = torch.zeros(cfg.layers, cfg.modules + 1, dtype=torch.bool)
        for i, layer in enumerate(arch.layers):
            available[i, list(layer)] = True
        self.register_buffer("available", available, persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for layer in self.layers:  # residual branches start near zero: stable deep stacking
            for module in layer.values():
                nn.init.constant_(module.bn2.weight, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_gates(x)[0]

    def forward_with_gates(self, x: torch.Tensor, noisy: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the per-layer gates ``(batch, modules + 1)`` that routed them."""
        h = self.stem(x)
        if not any(len(layer) for layer in self.layers):  # skip modules only: nothing to route
            return self.head(h), []
        gates = self.gates(x, noisy)
        for layer, g in zip(self.layers, gates):
            out = h
            for key, module in layer.items():
                gate = g[:, int(key)]
                if not self.run_unrouted and not bool(gate.any()):  # no sample routed here: not run, not trained
                    continue
                out = out + gate.view(-1, 1, 1, 1) * module(h)
            h = out
        return self.head(h), gates

    def gates(self, x: torch.Tensor, noisy: bool = False) -> list[torch.Tensor]:
        """Per-layer gates. A layer holding only the skip module routes everything there
        (weight 1, whatever its logits), so its gate logits are not computed."""
        k, skip = self.config.top_k, self.config.skip
        routed = [i for i, layer in enumerate(self.layers) if len(layer)]
        logits = dict(zip(routed, self.selector.logits(x, noisy, routed)))
        out = []
        for i in range(self.config.layers):
            if i in logits:
                z = logits[i]
                out.append(top_k_gates(z, self.available[i].unsqueeze(0).expand_as(z), k))
            else:
                out.append(F.one_hot(torch.full((x.shape[0],), skip, device=x.device), skip + 1).to(x.dtype))
        return out

    def module_items(self) -> Iterator[tuple[int, int, nn.Module]]:
        """``(layer, module, nn.Module)`` for every shrunk module held."""
        for i, layer in enumerate(self.layers):
            for key, module in layer.items():
                yield i, int(key), module

    @torch.no_grad()
    def extract(self, arch: ModularArch) -> ModularNet:
        """A sub-model holding ``arch``'s modules, with copies of this model's weights."""
        sub = ModularNet(self.config, arch, self.width_ratio)
        source = self.state_dict()
        missing = [k for k in sub.state_dict() if k not in source]
        if missing:
            raise ValueError(f"arch {arch} holds modules this model lacks: {missing[:3]}")
        sub.load_state_dict({k: source[k].clone() for k in sub.state_dict()})
        return sub.train(self.training)
