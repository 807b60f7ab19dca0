"""The ``gpt`` search space: an elastic decoder-only transformer (byte-level language model).

Costs come in two phases, both counted without building anything:

* **prefill** – the network runs once over ``context`` tokens (``blocks(arch)``,
  ``flops(arch)``, and what ``build_static(arch)`` computes);
* **decode** – one new token at position ``context - 1`` attends to ``context`` keys and
  values: ``context - 1`` cached plus its own (``blocks(arch, phase="decode")``,
  ``decode_flops(arch)``, ``build_static(arch, phase="decode")``).

FLOPs follow fvcore's convention (one multiply-accumulate is one FLOP; linear layers
only, layer norms, GELU, softmax and additions not counted) *plus* the two attention
matmuls ``Q K^T`` and ``A V`` that fvcore skips inside ``scaled_dot_product_attention``:
``2 * heads * queries * keys * head_size`` per attention block, counted dense (the causal
mask is not discounted). Logits are computed for every token, as the module does.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces._base import BlockSpec, SearchSpace
from search_spaces._registry import register_space
from search_spaces.gpt.arch import GPTArch
from search_spaces.gpt.config import PRESETS, GPTConfig
from search_spaces.gpt.static import (
    MLP,
    Attention,
    CachedAttention,
    DecodeStep,
    Head,
    StaticGPT,
    TokenEmbedding,
    init_weights,
)

PHASES = ("prefill", "decode")
_CHOICES = ("depths", "embeds", "heads", "mlp_ratios", "contexts")


@register_space("gpt")
class GPTSpace(SearchSpace):
    """Elastic decoder-only transformers: depth, width, heads and MLP ratio per layer, context.

    ``preset`` is ``"tiny"`` (a 2-core CPU trains it in minutes; the default) or ``"small"``
    (GPT-2-small sized, for a GPU); any field of :class:`GPTConfig` can be overridden by
    keyword, e.g. ``get_space("gpt", preset="tiny", contexts=(32, 64))``.

    Example::

        space = get_space("gpt", preset="tiny")
        arch = space.sample(random.Random(0))
        space.flops(arch), space.decode_flops(arch), space.memory_bytes(arch)
        supernet = space.build_supernet()
        logits = supernet(tokens, arch)     # tokens: (batch, <= arch.context) int64 bytes
    """

    name = "gpt"
    #: decode first: the per-token latency a user of an on-device assistant feels
    cost_phases = ("decode", "prefill")

    def __init__(self, preset: str = "tiny", **overrides: Any) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown gpt preset {preset!r}; use one of {sorted(PRESETS)}")
        unknown = set(overrides) - set(GPTConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown gpt setting(s) {sorted(unknown)}")
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        self.preset = preset
        self.config: GPTConfig = replace(PRESETS[preset], **overrides)

    # --- architectures ------------------------------------------------------------
    def sample(
        self,
        rng: random.Random | None = None,
        *,
        depths: tuple[int, ...] | None = None,
        embeds: tuple[int, ...] | None = None,
        heads: tuple[int, ...] | None = None,
        mlp_ratios: tuple[int, ...] | None = None,
        contexts: tuple[int, ...] | None = None,
    ) -> GPTArch:
        """A uniform sample; the keyword choices restrict it (progressive shrinking phases)."""
        rng = rng or random.Random()
        ds, es, hs, rs, cs = self._choices(
            {"depths": depths, "embeds": embeds, "heads": heads, "mlp_ratios": mlp_ratios, "contexts": contexts}
        )
        depth = rng.choice(ds)
        return GPTArch(
            embed=rng.choice(es),
            heads=tuple(rng.choice(hs) for _ in range(depth)),
            mlp_ratios=tuple(rng.choice(rs) for _ in range(depth)),
            context=rng.choice(cs),
        )

    def smallest(self, **choices: tuple[int, ...] | None) -> GPTArch:
        """The least compute; ``choices`` (``depths=``, ``heads=``...) restrict it to a phase."""
        ds, es, hs, rs, cs = self._choices(choices)
        return GPTArch(min(es), (min(hs),) * min(ds), (min(rs),) * min(ds), min(cs))

    def largest(self, **choices: tuple[int, ...] | None) -> GPTArch:
        """The most compute; ``choices`` restrict it as for :meth:`smallest`."""
        ds, es, hs, rs, cs = self._choices(choices)
        return GPTArch(max(es), (max(hs),) * max(ds), (max(rs),) * max(ds), max(cs))

    def _choices(self, choices: dict[str, tuple[int, ...] | None]) -> list[tuple[int, ...]]:
        unknown = set(choices) - set(_CHOICES)
        if unknown:
            raise ValueError(f"unknown gpt choice(s) {sorted(unknown)}; use {', '.join(_CHOICES)}")
        out = []
        for name in _CHOICES:
            allowed, values = getattr(self.config, name), choices.get(name)
            if values is None:
                out.append(allowed)
            elif not values or not set(values) <= set(allowed):
                raise ValueError(f"{name} {list(values)} must be a non-empty subset of {list(allowed)}")
            else:
                out.append(tuple(sorted(values)))
        return out

    def suggest(self, trial: Any) -> GPTArch:
        """Every slot is suggested in every trial (a static space suits NSGA-II and TPE);
        the heads and MLP ratio of layers beyond the depth are ignored."""
        cfg = self.config
        depth = trial.suggest_categorical("depth", list(cfg.depths))
        heads, ratios = [], []
        for i in range(cfg.max_depth):
            h = trial.suggest_categorical(f"heads_{i}", list(cfg.heads))
            r = trial.suggest_categorical(f"mlp_ratio_{i}", list(cfg.mlp_ratios))
            if i < depth:
                heads.append(h)
                ratios.append(r)
        embed = trial.suggest_categorical("embed", list(cfg.embeds))
        context = trial.suggest_categorical("context", list(cfg.contexts))
        return GPTArch(embed, tuple(heads), tuple(ratios), context)

    def arch_from_json(self, data: Any) -> GPTArch:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ValueError(f"arch is not valid JSON: {exc}") from None
        arch = GPTArch.from_json(data)
        self.validate(arch)
        return arch

    def validate(self, arch: Any) -> None:
        cfg = self.config
        if not isinstance(arch, GPTArch):
            raise ValueError(f"expected a GPTArch, got {type(arch).__name__}")
        if arch.depth not in cfg.depths:
            raise ValueError(f"depth (len(heads)) {arch.depth} is not one of {list(cfg.depths)}")
        for name, allowed in (("heads", cfg.heads), ("mlp_ratios", cfg.mlp_ratios)):
            bad = [v for v in getattr(arch, name) if v not in allowed]
            if bad:
                raise ValueError(f"{name} has {bad[0]}, not one of {list(allowed)}")
        if arch.embed not in cfg.embeds:
            raise ValueError(f"embed {arch.embed} is not one of {list(cfg.embeds)}")
        if arch.context > cfg.max_context:
            raise ValueError(
                f"context {arch.context} is longer than this supernet was trained for ({cfg.max_context} tokens); "
                f"use one of {list(cfg.contexts)}"
            )
        if arch.context not in cfg.contexts:
            raise ValueError(f"context {arch.context} is not one of {list(cfg.contexts)}")

    # --- descriptions ---------------------------------------------------------------
    def encode(self, arch: GPTArch) -> np.ndarray:
        """One-hot heads and MLP ratio per layer slot (zeros for skipped layers), then embed
        width and context."""
        cfg = self.config
        nh, nr = len(cfg.heads), len(cfg.mlp_ratios)
        slot = nh + nr
        base = cfg.max_depth * slot
        vec = np.zeros(base + len(cfg.embeds) + len(cfg.contexts), dtype=np.float32)
        for i, (h, r) in enumerate(arch.layers()):
            vec[i * slot + cfg.heads.index(h)] = 1.0
            vec[i * slot + nh + cfg.mlp_ratios.index(r)] = 1.0
        vec[base + cfg.embeds.index(arch.embed)] = 1.0
        vec[base + len(cfg.embeds) + cfg.contexts.index(arch.context)] = 1.0
        return vec

    def feature_names(self) -> list[str]:
        cfg = self.config
        names = []
        for i in range(cfg.max_depth):
            names += [f"l{i}_h{h}" for h in cfg.heads]
            names += [f"l{i}_r{r}" for r in cfg.mlp_ratios]
        return names + [f"embed{e}" for e in cfg.embeds] + [f"ctx{c}" for c in cfg.contexts]

    def input_shape(self, arch: GPTArch) -> tuple[int, ...]:
        """``(context,)``: one sequence of int64 token ids (see :meth:`example_input`)."""
        return (arch.context,)

    def example_input(
        self,
        what: Any,
        batch: int = 1,
        generator: torch.Generator | None = None,
        phase: str = "prefill",
    ) -> torch.Tensor:
        """Token ids ``(batch, tokens)`` for a network or an embedding block; hidden states
        ``(batch, tokens, embed)`` for the other blocks.

        For an arch, ``phase`` says which network: ``"prefill"`` takes ``context`` tokens,
        ``"decode"`` one (see :meth:`build_static`). A block's phase is in the block.
        """
        vocab = self.config.vocab_size
        if isinstance(what, BlockSpec):
            e, t, _ = what.in_shape
            if what.kind == "embedding":
                return torch.randint(0, vocab, (batch, t), generator=generator)
            return torch.randn(batch, t, e, generator=generator)
        tokens = what.context if _phase(phase) == "prefill" else 1
        return torch.randint(0, vocab, (batch, tokens), generator=generator)

    def blocks(self, arch: GPTArch, phase: str = "prefill") -> list[BlockSpec]:
        """Embedding, an attention and an MLP block per layer, head: with FLOPs and params.

        ``in_shape`` is ``(embed, tokens, 1)`` (``(1, tokens, 1)`` token ids for the
        embedding): ``tokens`` is ``context`` in the prefill phase and 1 in the decode phase,
        where the attention block also reads a KV cache of ``context - 1`` tokens (``extra``
        holds ``phase``, ``heads``, ``head_size`` and ``kv_len``, the keys attended to).
        ``params`` counts what each block's module holds, so the head and the embedding both
        count the tied vocabulary matrix; :meth:`params` counts it once.
        """
        cfg = self.config
        e, v, d, ctx = arch.embed, cfg.vocab_size, cfg.head_size, arch.context
        t = ctx if _phase(phase) == "prefill" else 1
        ln = 2 * e if cfg.bias else e
        b = int(cfg.bias)
        out = [
            BlockSpec(
                kind="embedding",
                in_shape=(1, t, 1),
                out_channels=e,
                params=(v + ctx) * e,
                extra=(("phase", phase), ("positions", ctx), ("vocab", v)),
            )
        ]
        for heads, ratio in arch.layers():
            inner, hidden = heads * d, ratio * e
            out.append(
                BlockSpec(
                    kind="attention",
                    in_shape=(e, t, 1),
                    out_channels=e,
                    mid_channels=inner,
                    residual=True,
                    flops=4 * t * e * inner + 2 * heads * t * ctx * d,
                    params=ln + 3 * (e * inner + b * inner) + inner * e + b * e,
                    extra=(("phase", phase), ("heads", heads), ("head_size", d), ("kv_len", ctx)),
                )
            )
            out.append(
                BlockSpec(
                    kind="mlp",
                    in_shape=(e, t, 1),
                    out_channels=e,
                    expand=float(ratio),
                    mid_channels=hidden,
                    activation="gelu",
                    residual=True,
                    flops=2 * t * e * hidden,
                    params=ln + e * hidden + b * hidden + hidden * e + b * e,
                    extra=(("phase", phase),),
                )
            )
        out.append(
            BlockSpec(
                kind="head",
                in_shape=(e, t, 1),
                out_channels=v,
                flops=t * e * v,
                params=ln + v * e,
                extra=(("phase", phase), ("tied", True)),
            )
        )
        return out

    def params(self, arch: GPTArch) -> int:
        """Parameters of the extracted sub-network (the tied vocabulary matrix once)."""
        return sum(b.params for b in self.blocks(arch)) - self.config.vocab_size * arch.embed

    def decode_flops(self, arch: GPTArch) -> int:
        """Multiply-accumulates of decoding one token after ``context - 1`` cached ones."""
        return sum(b.flops for b in self.blocks(arch, phase="decode"))

    def kv_cache_bytes(self, arch: GPTArch, bytes_per_value: int = 4) -> int:
        """Bytes of the keys and values of ``context`` tokens at batch 1:
        ``2 * context * head_size * sum(heads per layer) * bytes_per_value``."""
        return 2 * arch.context * self.config.head_size * sum(arch.heads) * bytes_per_value

    def memory_bytes(self, arch: GPTArch, bytes_per_value: int = 4) -> int:
        """Peak inference memory at batch 1: weights plus a full KV cache.

        ``(params(arch) + 2 * context * head_size * sum(heads)) * bytes_per_value``, every
        value stored with ``bytes_per_value`` bytes (4 for float32, 2 for bf16). Activations
        are left out: while decoding they are a few vectors of the embedding width, far below
        either term (a prefill of ``context`` tokens holds more, transiently).
        """
        return self.params(arch) * bytes_per_value + self.kv_cache_bytes(arch, bytes_per_value)

    # --- modules ----------------------------------------------------------------------
    def build_static(self, arch: GPTArch, phase: str = "prefill") -> nn.Module:
        """A freshly initialised :class:`StaticGPT` of ``arch`` (prefill: ``(1, context)`` ids
        in, logits out), or for ``phase="decode"`` a :class:`DecodeStep` around it that decodes
        one token after a random KV cache of ``context - 1`` tokens held in buffers."""
        self.validate(arch)
        model = StaticGPT(self.config, arch)
        init_weights(model, arch.depth)
        if _phase(phase) == "decode":
            return DecodeStep(model, arch.context - 1).eval()
        return model.eval()

    def build_block(self, block: BlockSpec) -> nn.Module:
        """A module computing ``block``; its input is :meth:`example_input` of the block.

        The decode-phase attention block is a :class:`CachedAttention`: its KV cache of
        ``kv_len - 1`` earlier tokens is a pair of (non-persistent) buffers.
        """
        cfg, extra = self.config, dict(block.extra)
        e, t, _ = block.in_shape
        eps = cfg.layer_norm_eps
        if block.kind == "embedding":
            positions = extra["positions"]
            start = 0 if extra["phase"] == "prefill" else positions - t
            module: nn.Module = TokenEmbedding(cfg.vocab_size, block.out_channels, positions, cfg.dropout, start)
        elif block.kind == "attention":
            attn = Attention(e, extra["heads"], extra["head_size"], cfg.dropout, cfg.bias, eps)
            past = extra["kv_len"] - t
            module = CachedAttention(attn, past) if past > 0 else attn
        elif block.kind == "mlp":
            module = MLP(e, block.mid_channels, cfg.dropout, cfg.bias, eps)
        elif block.kind == "head":
            module = Head(e, block.out_channels, cfg.bias, eps)
        else:
            raise ValueError(f"gpt has no block kind {block.kind!r}")
        init_weights(module)
        return module.eval()

    def split_modules(self, module: nn.Module, arch: GPTArch) -> list[nn.Module]:
        """Embedding, each layer's attention and MLP, head (the prefill phase, no KV cache):
        one segment per block, sharing ``module``'s weights."""
        if not isinstance(module, StaticGPT) or module.arch != arch:
            raise ValueError(f"split_modules needs the StaticGPT of arch {arch}")
        inner = [part for layer in module.layers for part in (layer.attn, layer.mlp)]
        return [module.embed, *inner, module.head]

    def build_supernet(self) -> nn.Module:
        from search_spaces.gpt.supernet import GPTSupernet

        return GPTSupernet(self.config)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "config": self.config.to_json()}


def _phase(phase: str) -> str:
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; use one of {list(PHASES)}")
    return phase
