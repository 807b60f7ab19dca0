"""A device's local training: batch-norm statistics end up those of its data under its final weights."""

from __future__ import annotations

import torch
from torch import nn

from nas.adapt.device import recalibrate_bn


class _TwoPaths(nn.Module):
    """A conv + BN that inputs reach, and a BN that none does (like an unrouted module)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.unused = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def test_recalibration_sets_statistics_of_the_data_and_keeps_unreached_ones():
    torch.manual_seed(0)
    net = _TwoPaths().eval()
    net.bn.running_mean.fill_(5.0)  # stale statistics, as after the cloud averaged the weights
    net.unused.running_mean.fill_(3.0)
    net.unused.running_var.fill_(2.0)
    x = torch.randn(64, 2, 3, 3) * 2 + 1
    recalibrate_bn(net, x, batch_size=16)
    with torch.no_grad():
        out = net.conv(x).transpose(0, 1).reshape(4, -1)
    # the mean of the 4 batch means is the data's mean (equal batches)
    torch.testing.assert_close(net.bn.running_mean, out.mean(1), rtol=1e-4, atol=1e-4)
    assert net.bn.momentum == 0.1 and not net.training
    assert torch.equal(net.unused.running_mean, torch.full((4,), 3.0))
    assert torch.equal(net.unused.running_var, torch.full((4,), 2.0))
