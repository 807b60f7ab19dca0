"""Text from a language-model sub-network: greedy or sampled decoding with a KV cache.

:func:`generate` runs any model with the :class:`~search_spaces.gpt.StaticGPT` interface
(``model(tokens, cache)``, ``model.new_cache()``, ``model.arch.context``): the prompt is
prefilled once, then each new token is one forward pass of a single token over the
cached keys and values. When the cache reaches the model's context it is rebuilt from
the last half of the context (a sliding window that keeps decoding cheap), so any number
of tokens can be generated. :func:`generate_from_checkpoint` extracts a sub-network of a
trained ``gpt`` supernet and decodes text from a prompt (what ``edgenas generate`` runs).

Example::

    result = generate_from_checkpoint("runs/gpt", "max", "def main(", tokens=200, temperature=0.8)
    print(result.prompt + result.text)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import EdgenasError


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``max_new_tokens`` token ids (int64, 1-D) that ``model`` writes after ``prompt`` (1-D ids).

    ``temperature`` 0 is greedy (the most likely token each time); above 0 the next token
    is sampled from ``softmax(logits / temperature)``, restricted to the ``top_k`` most
    likely tokens when given, with ``generator`` for reproducible samples. A prompt longer
    than the model's context keeps its last ``context`` tokens.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if prompt.dim() != 1 or prompt.numel() == 0:
        raise ValueError("prompt must be a non-empty 1-D tensor of token ids")
    was_training = model.training
    model.eval()
    context = int(model.arch.context)
    device = next(model.parameters()).device
    history = prompt.to(device=device, dtype=torch.long)[-context:]
    out = torch.empty(max_new_tokens, dtype=torch.long)
    try:
        cache = model.new_cache()
        logits = model(history[None], cache)[0, -1]
        for i in range(max_new_tokens):
            token = _pick(logits, temperature, top_k, generator)
            out[i] = token
            history = torch.cat([history, token.view(1).to(device)])
            if i + 1 == max_new_tokens:
                break
            if cache.length >= context:  # full: slide to the last half of the context
                history = history[-(context // 2 or 1):]
                cache = model.new_cache()
                logits = model(history[None], cache)[0, -1]
            else:
                logits = model(history[-1:][None], cache)[0, -1]
    finally:
        model.train(was_training)
    return out


def _pick(logits: torch.Tensor, temperature: float, top_k: int | None,
          generator: torch.Generator | None) -> torch.Tensor:
    logits = logits.float().cpu()
    if temperature == 0:
        return logits.argmax()
    logits = logits / temperature
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[0]


@dataclass(frozen=True)
class Generated:
    """What a sub-network wrote: the prompt as used, the new text, and how fast."""

    arch: Any
    prompt: str
    text: str
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


def generate_from_checkpoint(
    checkpoint: str | Path,
    arch: str = "max",
    prompt: str = "",
    *,
    tokens: int = 200,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 0,
    device: str = "auto",
) -> Generated:
    """Extract sub-network ``arch`` (``min``, ``max``, ``random:1`` or JSON) of the ``gpt``
    supernet at ``checkpoint`` and write ``tokens`` bytes after ``prompt``.

    An empty prompt starts from a line break. The output is decoded as UTF-8 (a byte
    sequence that is not valid UTF-8 shows as U+FFFD).
    """
    from nas.data.text import decode, encode
    from nas.spaces import parse_arch_specs
    from nas.tasks import TextTask, task_type
    from nas.training import load_supernet
    from nas.training.distributed import pick_device

    if tokens < 1:
        raise EdgenasError(f"-n must be at least 1, got {tokens}")
    space, supernet, ckpt = load_supernet(checkpoint)
    if task_type(space.name) is not TextTask:
        raise EdgenasError(
            f"{ckpt.path.parent} holds a supernet of space {space.name}, not a language model; "
            "generate needs a checkpoint of space gpt"
        )
    archs = parse_arch_specs(space, [arch], seed)
    if len(archs) != 1:
        raise EdgenasError(f"--arch {arch}: generate takes one sub-network, got {len(archs)}")
    chosen = archs[0]
    target = pick_device(device)
    model = supernet.extract(chosen).to(target).eval()
    ids = encode(prompt or "\n")
    kept = ids[-chosen.context:]
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    new = generate(model, kept, tokens, temperature=temperature, top_k=top_k, generator=generator)
    seconds = time.perf_counter() - start
    return Generated(chosen, decode(kept) if prompt else "", decode(new), tokens, seconds)


__all__ = ["Generated", "generate", "generate_from_checkpoint"]
