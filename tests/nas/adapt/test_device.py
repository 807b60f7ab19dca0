"""A device's local training: batch-norm statistics end up those of its data under its final weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.adapt.device import local_batches
from nas.evaluation import recalibrate_bn


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
    recalibrate_bn(net, local_batches(x, 16))
    with torch.no_grad():
        out = net.conv(x).transpose(0, 1).reshape(4, -1)
    # the mean of the 4 batch means is the data's mean (equal batches)
    torch.testing.assert_close(net.bn.running_mean, out.mean(1), rtol=1e-4, atol=1e-4)
    # and the mean of the unbiased batch variances
    with torch.no_grad():
        batches = net.conv(x).split(16)
    var = torch.stack([b.transpose(0, 1).reshape(4, -1).var(1) for b in batches]).mean(0)
    torch.testing.assert_close(net.bn.running_var, var, rtol=1e-4, atol=1e-4)
    assert int(net.bn.num_batches_tracked) == 4
    assert net.bn.momentum == 0.1 and not net.training
    assert torch.equal(net.unused.running_mean, torch.full((4,), 3.0))
    assert torch.equal(net.unused.running_var, torch.full((4,), 2.0))


def test_recalibration_drops_a_short_tail_and_restores_state_on_error():
    torch.manual_seed(0)
    net = _TwoPaths()
    x = torch.randn(18, 2, 3, 3)
    recalibrate_bn(net, local_batches(x, 16))  # the 2-sample tail would count as much as 16 samples
    with torch.no_grad():
        full = net.conv(x[:16]).transpose(0, 1).reshape(4, -1)
    torch.testing.assert_close(net.bn.running_mean, full.mean(1), rtol=1e-4, atol=1e-4)

    class Broken(_TwoPaths):
        def forward(self, x):
            self.bn(self.conv(x))
            raise RuntimeError("device ran out of memory")

    broken = Broken()
    broken.bn.running_mean.fill_(7.0)
    with pytest.raises(RuntimeError, match="device ran out of memory"):  # the error reaches the caller
        recalibrate_bn(broken, local_batches(x, 16))
    assert broken.bn.momentum == 0.1 and broken.training
