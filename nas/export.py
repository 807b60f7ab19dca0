"""Export a static sub-network: safetensors weights, ONNX, a ``torch.export`` program, TVM.

Each exporter writes one file and returns its path; :func:`export_model` runs the ones
asked for. ONNX files are checked with ``onnx.checker`` and run through onnxruntime on a
batch of two, whose outputs must match PyTorch's; a mismatch is an error, not a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import EdgenasError

FORMATS = ("safetensors", "onnx", "torch_export", "tvm")
SUFFIX = {"safetensors": ".safetensors", "onnx": ".onnx", "torch_export": ".pt2", "tvm": ".so"}


def export_safetensors(model: nn.Module, path: Path) -> Path:
    """The state dict (parameters and BN statistics) as safetensors."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return path


def export_onnx(
    model: nn.Module,
    input_shape: Sequence[int],
    path: Path,
    *,
    opset: int = 17,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> Path:
    """ONNX with a dynamic batch axis, checked by ``onnx.checker`` and by onnxruntime."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = model.eval().cpu()
    example = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=False,  # the TorchScript exporter needs no onnxscript and handles these nets
        opset_version=opset,
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
    )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": example.numpy()})[0]
    with torch.no_grad():
        expected = model(example).numpy()
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        error = float(np.abs(got - expected).max())
        path.unlink(missing_ok=True)
        raise EdgenasError(f"ONNX export differs from PyTorch by {error:.2e} (> {atol}); not exported")
    return path


def export_torch_program(model: nn.Module, input_shape: Sequence[int], path: Path) -> Path:
    """A ``torch.export`` program with a dynamic batch axis (``torch.export.load`` reads it)."""
    example = torch.randn(2, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model.eval().cpu(), (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def export_tvm(model: nn.Module, input_shape: Sequence[int], path: Path, target: dict[str, Any]) -> Path:
    """A TVM-compiled shared library for ``target`` (a TVM target JSON dict)."""
    import tvm
    from tvm.relax.frontend.torch import from_exported_program

    example = torch.randn(1, *input_shape)
    with torch.no_grad():
        program = torch.export.export(model.eval().cpu(), (example,))
        mod = from_exported_program(program, keep_params_as_input=False)
    executable = tvm.compile(mod, target=tvm.target.Target(target))
    executable.export_library(str(path))
    return path


def export_model(
    model: nn.Module,
    input_shape: Sequence[int],
    out_dir: Path,
    formats: Sequence[str] = ("safetensors", "onnx", "torch_export"),
    *,
    stem: str = "model",
    tvm_target: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``model`` in every format of ``formats`` into ``out_dir``; returns format -> path."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise EdgenasError(f"unknown export format {unknown[0]!r}; use one of {', '.join(FORMATS)}")
    if "tvm" in formats and tvm_target is None:
        raise EdgenasError("a TVM export needs the device's target: pass --device of a profiled device")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt in formats:
        path = out_dir / f"{stem}{SUFFIX[fmt]}"
        if fmt == "safetensors":
            written[fmt] = export_safetensors(model, path)
        elif fmt == "onnx":
            written[fmt] = export_onnx(model, input_shape, path)
        elif fmt == "torch_export":
            written[fmt] = export_torch_program(model, input_shape, path)
        else:
            assert tvm_target is not None
            written[fmt] = export_tvm(model, input_shape, path, tvm_target)
    return written
