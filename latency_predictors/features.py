"""Numbers a regressor can learn cost from: per block, and per whole network.

Block features come from :class:`~search_spaces.BlockSpec` alone (shapes, stride,
kernel, expand, channels, FLOPs, parameters, memory traffic), so any space that
describes its blocks can be profiled. Network features aggregate its blocks (totals and
counts per kind) plus the input resolution. Both featurizers are scikit-learn
transformers: ``fit`` learns the vocabulary of block kinds and activations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from search_spaces import BlockSpec

_NUMERIC = (
    "in_channels", "in_height", "in_width", "out_channels", "out_height", "stride", "kernel",
    "expand", "mid_channels", "se", "residual", "log_flops", "log_params", "log_memory",
    "flops_m", "params_k", "memory_k",
)  # fmt: skip


def _numeric(b: BlockSpec) -> list[float]:
    c, h, w = b.in_shape
    return [
        c, h, w, b.out_channels, b.out_shape[1], b.stride, b.kernel, b.expand, b.mid_channels,
        float(b.se), float(b.residual), np.log1p(b.flops), np.log1p(b.params),
        np.log1p(b.memory_traffic), b.flops / 1e6, b.params / 1e3, b.memory_traffic / 1e3,
    ]  # fmt: skip


class BlockFeaturizer(TransformerMixin, BaseEstimator):
    """``list[BlockSpec]`` → float matrix: one-hot kind and activation, then numeric fields."""

    def fit(self, X: Sequence[BlockSpec], y: object = None) -> BlockFeaturizer:
        self.kinds_ = sorted({b.kind for b in X})
        self.activations_ = sorted({b.activation for b in X})
        return self

    def transform(self, X: Sequence[BlockSpec]) -> np.ndarray:
        rows = []
        for b in X:
            kind = [float(b.kind == k) for k in self.kinds_]
            act = [float(b.activation == a) for a in self.activations_]
            rows.append(kind + act + _numeric(b))
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(
            [f"kind_{k}" for k in self.kinds_] + [f"act_{a}" for a in self.activations_] + list(_NUMERIC)
        )


class NetworkFeaturizer(TransformerMixin, BaseEstimator):
    """``list[list[BlockSpec]]`` → float matrix: input resolution, block count, total FLOPs,
    parameters and memory traffic (and their logs), and per kind the count and FLOPs."""

    def fit(self, X: Sequence[Sequence[BlockSpec]], y: object = None) -> NetworkFeaturizer:
        self.kinds_ = sorted({b.kind for blocks in X for b in blocks})
        return self

    def transform(self, X: Sequence[Sequence[BlockSpec]]) -> np.ndarray:
        # one pass over each network's blocks (a search featurizes thousands of networks)
        index = {k: i for i, k in enumerate(self.kinds_)}
        n, nk = len(X), len(self.kinds_)
        head = np.zeros((n, 5))
        totals = np.zeros((n, 3))
        per_kind = np.zeros((n, 2 * nk))
        for r, blocks in enumerate(X):
            flops = params = memory = 0
            counts, kind_flops = [0] * nk, [0] * nk
            for b in blocks:
                flops += b.flops
                params += b.params
                memory += b.memory_traffic
                i = index.get(b.kind)
                if i is not None:
                    counts[i] += 1
                    kind_flops[i] += b.flops
            head[r] = (blocks[0].in_shape[1] if blocks else 0, len(blocks), flops / 1e6, params / 1e3, memory / 1e3)
            totals[r] = (flops, params, memory)
            per_kind[r, 0::2] = counts
            per_kind[r, 1::2] = [f / 1e6 for f in kind_flops]
        return np.hstack([head, np.log1p(totals), per_kind]).reshape(n, -1)
