"""``ModularConfig``: the shape of a Nebula modular network (1-D signals or small images)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModularConfig:
    """Sizes of the cloud model; every modular layer keeps ``channels`` x ``height`` x ``width``.

    A 1-D signal is an image of height 1 (kernels become ``1 x kernel``), so one network
    covers MNIST-1D and small images alike. Each of the ``layers`` layers holds ``modules``
    shrunk copies of a residual conv block (``module_channels`` hidden channels each, a
    ``1/modules`` share of the dense block's width) plus one parameter-free skip module.
    """

    in_channels: int = 1
    height: int = 1
    width: int = 40
    num_classes: int = 10
    channels: int = 32
    layers: int = 4
    modules: int = 8
    module_channels: int = 8
    kernel: int = 5
    embed_dim: int = 32
    top_k: int = 2

    def __post_init__(self) -> None:
        for name in ("in_channels", "height", "width", "num_classes", "channels", "layers",
                     "modules", "module_channels", "kernel", "embed_dim", "top_k"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (same-size padding), got {self.kernel}")
        if self.top_k > self.modules + 1:
            raise ValueError(f"top_k={self.top_k} exceeds the {self.modules + 1} modules of a layer")

    @property
    def skip(self) -> int:
        """Index of the skip module in every layer (after the shrunk modules)."""
        return self.modules

    @property
    def kernel_size(self) -> tuple[int, int]:
        return (1, self.kernel) if self.height == 1 else (self.kernel, self.kernel)

    @property
    def padding(self) -> tuple[int, int]:
        kh, kw = self.kernel_size
        return (kh // 2, kw // 2)

    @property
    def pooled(self) -> tuple[int, int]:
        """Input size the selector sees after average pooling (cheap routing on a summary)."""
        return (min(self.height, 4), min(self.width, 10))


PRESETS: dict[str, ModularConfig] = {
    "mnist1d": ModularConfig(),
    "digits": ModularConfig(height=8, width=8, kernel=3, channels=32, module_channels=8),
    "tiny": ModularConfig(width=16, channels=8, layers=2, modules=3, module_channels=4,
                          kernel=3, embed_dim=8),
}
