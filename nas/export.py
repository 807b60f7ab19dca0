"""Export a static sub-network: safetensors weights, ONNX, a ``torch.export`` program, TVM.

Each exporter writes one file and returns its path; :func:`export_model` runs the ones
asked for. ONNX files are checked with ``onnx.checker`` and run through onnxruntime on a
batch of two, whose outputs must match PyTorch's; a mismatch is an error, not a warning.

``input_shape`` is the shape of one float input (an image: random normal examples), or an
example input itself, batch 1, for models that take something else: a language model's
int64 token ids (``space.example_input(arch)``; ONNX checks it on :data:`PROMPT`, and its
input is named ``tokens``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import EdgenasError

FORMATS = ("safetensors", "onnx", "torch_export", "tvm")
PROMPT = "def main():\n    print("
"""What an exported language model is checked on (as bytes, repeated to the example's length)."""
Example = Sequence[int] | torch.Tensor


def _examples(input_shape: Example, batch: int, seed: int | None = 0) -> torch.Tensor:
    """``batch`` inputs: random normal floats of ``input_shape``, or the example tensor's
    kind: token ids of :data:`PROMPT` (repeated to its length, then shifted per row)."""
    if not isinstance(input_shape, torch.Tensor):
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(batch, *input_shape, generator=gen)
    if input_shape.is_floating_point():
        return input_shape[:1].expand(batch, *input_shape.shape[1:]).clone()
    length = input_shape.shape[1]
    prompt = list(PROMPT.encode()) * (length // len(PROMPT) + 1)
    rows = [prompt[i:i + length] for i in range(batch)]
    return torch.tensor(rows, dtype=input_shape.dtype)
SUFFIX = {"safetensors": ".safetensors", "onnx": ".onnx", "torch_export": ".pt2", "tvm": ".so"}


def export_safetensors(model: nn.Module, path: Path) -> Path:
    """The state dict (parameters and BN statistics) as safetensors; a tied weight (a
    language model's embedding and output head) is written under each of its names."""
    from safetensors.torch import save_file

    state, seen = {}, set()
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        ptr = v.untyped_storage().data_ptr()
        state[k] = v.clone() if ptr in seen else v  # safetensors refuses shared storage
        seen.add(ptr)
    save_file(state, str(path))
    return path


def export_onnx(
    model: nn.Module,
    input_shape: Example,
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
    example = _examples(input_shape, 2)
    name = "images" if example.is_floating_point() else "tokens"
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=False,  # the TorchScript exporter needs no onnxscript and handles these nets
        opset_version=opset,
        input_names=[name],
        output_names=["logits"],
        dynamic_axes={name: {0: "batch"}, "logits": {0: "batch"}},
    )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: example.numpy()})[0]
    with torch.no_grad():
        expected = model(example).numpy()
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        error = float(np.abs(got - expected).max())
        path.unlink(missing_ok=True)
        raise EdgenasError(f"ONNX export differs from PyTorch by {error:.2e} (> {atol}); not exported")
    return path


def export_torch_program(model: nn.Module, input_shape: Example, path: Path) -> Path:
    """A ``torch.export`` program with a dynamic batch axis (``torch.export.load`` reads it)."""
    example = _examples(input_shape, 2, seed=None)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model.eval().cpu(), (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def export_tvm(model: nn.Module, input_shape: Example, path: Path, target: dict[str, Any]) -> Path:
    """A TVM-compiled shared library for ``target`` (a TVM target JSON dict)."""
    import tvm
    from tvm.relax.frontend.torch import from_exported_program

    example = _examples(input_shape, 1, seed=None)
    with torch.no_grad():
        program = torch.export.export(model.eval().cpu(), (example,))
        mod = from_exported_program(program, keep_params_as_input=False)
    executable = tvm.compile(mod, target=tvm.target.Target(target))
    executable.export_library(str(path))
    return path


def export_model(
    model: nn.Module,
    input_shape: Example,
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
