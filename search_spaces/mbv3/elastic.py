"""Elastic operations: weights are sliced as views of the largest ones, never copied.

Channel dimensions are shrunk by taking a prefix (channels are kept sorted by importance,
see ``sort_channels``); kernels by taking the centre of the largest kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.mbv3.static import activation, mid_channels, se_channels


class ElasticPointwise(nn.Module):
    """A 1x1 convolution whose input and output channels shrink to a prefix."""

    def __init__(self, max_in: int, max_out: int, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        weight = self.weight[:out_channels, : x.shape[1]]
        bias = self.bias[:out_channels] if self.bias is not None else None
        return F.conv2d(x, weight, bias)


class ElasticDepthwise(nn.Module):
    """A depthwise convolution: channels shrink to a prefix, the kernel to its centre."""

    def __init__(self, max_channels: int, max_kernel: int, stride: int) -> None:
        super().__init__()
        self.max_kernel = max_kernel
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_channels, 1, max_kernel, max_kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def forward(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        channels = x.shape[1]
        start = (self.max_kernel - kernel) // 2
        weight = self.weight[:channels, :, start : start + kernel, start : start + kernel]
        return F.conv2d(x, weight, None, self.stride, kernel // 2, 1, channels)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the first ``x.shape[1]`` channels; running statistics update in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        # the same momentum logic as nn.BatchNorm2d, applied to channel-prefix views
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            self.running_mean[:c] if not self.training or self.track_running_stats else None,
            self.running_var[:c] if not self.training or self.track_running_stats else None,
            self.weight[:c],
            self.bias[:c],
            use_batch_stats,
            factor,
            self.eps,
        )


class ElasticSqueezeExcite(nn.Module):
    def __init__(self, max_channels: int) -> None:
        super().__init__()
        self.reduce = ElasticPointwise(max_channels, se_channels(max_channels), bias=True)
        self.expand = ElasticPointwise(se_channels(max_channels), max_channels, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        s = x.mean((2, 3), keepdim=True)
        s = torch.relu(self.reduce(s, se_channels(channels)))
        return x * F.hardsigmoid(self.expand(s, channels))


class ElasticMBConv(nn.Module):
    """An inverted-residual block with elastic kernel and expand ratio (fixed in/out channels)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        max_kernel: int,
        max_expand: int,
        act: str,
        se: bool,
    ) -> None:
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.residual = stride == 1 and cin == cout
        max_mid = mid_channels(cin, max_expand)
        self.expand_conv = ElasticPointwise(cin, max_mid)
        self.expand_bn = ElasticBatchNorm2d(max_mid)
        self.dw_conv = ElasticDepthwise(max_mid, max_kernel, stride)
        self.dw_bn = ElasticBatchNorm2d(max_mid)
        self.se = ElasticSqueezeExcite(max_mid) if se else None
        self.project_conv = ElasticPointwise(max_mid, cout)
        self.project_bn = ElasticBatchNorm2d(cout)
        self.act = activation(act)

    def forward(self, x: torch.Tensor, kernel: int, expand: int) -> torch.Tensor:
        mid = mid_channels(self.cin, expand)
        out = self.act(self.expand_bn(self.expand_conv(x, mid)))
        out = self.act(self.dw_bn(self.dw_conv(out, kernel)))
        if self.se is not None:
            out = self.se(out)
        out = self.project_bn(self.project_conv(out, self.cout))
        return out + x if self.residual else out

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Reorder expanded channels (and SE channels) by importance, most important first.

        Importance is the L1 norm of the weights that read a channel (OFA's
        ``re_organize_middle_weights``), so the prefix kept by a small expand ratio holds the
        channels that matter most. The largest sub-network computes exactly the same function.
        """
        if self.se is not None:
            order = _descending_l1(self.se.expand.weight, dim=1)
            self.se.reduce.weight.copy_(self.se.reduce.weight[order])
            self.se.reduce.bias.copy_(self.se.reduce.bias[order])
            self.se.expand.weight.copy_(self.se.expand.weight[:, order])
        order = _descending_l1(self.project_conv.weight, dim=1)
        self.project_conv.weight.copy_(self.project_conv.weight[:, order])
        self.expand_conv.weight.copy_(self.expand_conv.weight[order])
        self.dw_conv.weight.copy_(self.dw_conv.weight[order])
        for bn in (self.expand_bn, self.dw_bn):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[order])
        if self.se is not None:
            self.se.reduce.weight.copy_(self.se.reduce.weight[:, order])
            self.se.expand.weight.copy_(self.se.expand.weight[order])
            self.se.expand.bias.copy_(self.se.expand.bias[order])


def _descending_l1(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Indices of ``weight``'s slices along ``dim`` by decreasing L1 norm (stable for ties)."""
    dims = [d for d in range(weight.dim()) if d != dim]
    importance = weight.detach().abs().sum(dim=dims).float()
    return torch.sort(importance, descending=True, stable=True).indices


def init_weights(module: nn.Module) -> None:
    """torchvision's MobileNetV3 initialisation for the plain layers of a network."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def center_or_prefix(super_shape: torch.Size, sub_shape: torch.Size) -> tuple[slice, ...]:
    """Where a sub-network tensor sits in the supernet's tensor.

    Channel dimensions (0 and 1) take a prefix; the kernel dimensions of a 4-D convolution
    weight (2 and 3) take the centre. Raises ``ValueError`` if the sub tensor does not fit.
    """
    if len(super_shape) != len(sub_shape):
        raise ValueError(f"rank mismatch: {tuple(sub_shape)} does not fit {tuple(super_shape)}")
    slices = []
    for d, (big, small) in enumerate(zip(super_shape, sub_shape)):
        if small > big:
            raise ValueError(f"shape {tuple(sub_shape)} does not fit {tuple(super_shape)}")
        if len(super_shape) == 4 and d >= 2:
            start = (big - small) // 2
            if (big - small) % 2:
                raise ValueError(f"kernel {small} cannot be centred in {big}")
            slices.append(slice(start, start + small))
        else:
            slices.append(slice(0, small))
    return tuple(slices)

