"""Text for language models: bytes as tokens (a vocabulary of 256, no tokenizer), split by document.

A corpus is a list of documents: the built-in ``pydoc`` corpus is CPython's help topics
(``pydoc_data.topics``, about 465,000 characters in 79 topics, shipped with Python); a
``text`` corpus is every text file under a directory (one document per file) or one file
cut at line ends into pieces of a few KiB. Documents, never tokens, are shuffled by the
seed and dealt out: ``val_fraction`` of the bytes to validation, as much again to test,
the rest to training, so no document is seen in two splits. Each split is its documents'
UTF-8 bytes joined by blank lines, one ``uint8`` tensor.

Batches are contiguous windows of ``context + 1`` bytes: the first ``context`` are the
input, the last ``context`` the next-token targets. A training batch takes windows at
random offsets drawn from ``(seed, step)`` alone, so a resumed run sees the same batches
and each data-parallel rank takes its share of the same global batch; evaluation takes
consecutive windows from the start of the split, so every arch is measured on the same
tokens. Nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.data.config import DataConfig
from nas.errors import EdgenasError

VOCAB_SIZE = 256
"""Byte-level vocabulary: every byte value is a token."""

DEFAULT_EVAL_TOKENS = 32768
"""Tokens a validation or test loss is measured on when ``data.eval_tokens`` is not set."""

SEPARATOR = b"\n\n"
"""What joins two documents of a split."""

_PIECE_MIN, _PIECE_MAX, _PIECES = 1 << 10, 1 << 16, 64
_BINARY_PROBE = 8192

Document = tuple[str, bytes]
Batch = tuple[torch.Tensor, torch.Tensor]


def pydoc_documents() -> list[Document]:
    """CPython's help topics (``pydoc_data.topics``), one document per topic, in name order."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # a Python built without its documentation data
        raise EdgenasError(
            "this Python has no pydoc_data.topics (built without its help texts); "
            "use data.name: text with data.path pointing at text files"
        ) from None
    return [(name, topics[name].encode("utf-8")) for name in sorted(topics)]


def read_documents(path: str | Path) -> list[Document]:
    """The documents of a file or a directory of text files (one-line errors for what cannot work).

    A directory gives one document per file, every non-hidden file below it whose first
    8 KiB hold no NUL byte (binary files are skipped), in path order. A single file is cut
    at line ends into about 64 pieces (1 to 64 KiB each), the documents of that file.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise EdgenasError(f"data.path {root} does not exist: point it at a text file or a directory of text files")
    if root.is_file():
        data = _read(root)
        if not data.strip():
            raise EdgenasError(f"data.path {root} holds no text: give a file with text in it")
        return _pieces(root.name, data)
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    documents = []
    for file in files:
        data = _read(file)
        if data.strip() and b"\0" not in data[:_BINARY_PROBE]:
            documents.append((str(file.relative_to(root)), data))
    if not documents:
        raise EdgenasError(
            f"data.path {root} holds no text files ({len(files)} file(s), none with text): "
            "put .txt (or any text) files in it"
        )
    return documents


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EdgenasError(f"cannot read {path} ({exc.strerror or exc}); check its permissions") from None


def _pieces(name: str, data: bytes) -> list[Document]:
    """``data`` cut after the first line end past every ``size`` bytes."""
    size = min(_PIECE_MAX, max(_PIECE_MIN, len(data) // _PIECES))
    out, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start + size)
        end = len(data) if end < 0 else end + 1
        out.append((f"{name}:{len(out)}", data[start:end]))
        start = end
    return out


@dataclass(frozen=True)
class TextSplits:
    """Training, validation and test bytes of a corpus, and the window length (context)."""

    name: str
    train: torch.Tensor
    validation: torch.Tensor
    test: torch.Tensor
    documents: dict[str, int]
    context: int
    eval_tokens: int

    vocab_size: int = VOCAB_SIZE

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "validation", "test"):
            raise ValueError(f"no split {name!r}; use train, validation or test")
        return getattr(self, name)

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about its data (bytes and documents per split, context)."""
        return {
            "name": self.name,
            "kind": "text",
            "vocab_size": self.vocab_size,
            "context": self.context,
            "eval_tokens": self.eval_tokens,
            "train": int(self.train.numel()),
            "validation": int(self.validation.numel()),
            "test": int(self.test.numel()),
            "documents": dict(self.documents),
        }


def split_documents(
    documents: list[Document], val_fraction: float, seed: int
) -> tuple[list[Document], list[Document], list[Document]]:
    """Deal shuffled documents out: each goes to validation while that holds less than
    ``val_fraction`` of the bytes and the document does not overshoot that by more than a
    fifth, else to test likewise, else to training (a split no document fits takes the
    smallest). Each split keeps the corpus order."""
    if len(documents) < 3:
        raise EdgenasError(
            f"the corpus has {len(documents)} document(s); a split by document needs at least 3 "
            "(training, validation, test): add text or files"
        )
    order = torch.randperm(len(documents), generator=torch.Generator().manual_seed(seed)).tolist()
    target = val_fraction * sum(len(d) for _, d in documents)
    held: list[list[int]] = [[], []]
    sizes = [0, 0]
    train = []
    for i in order:
        size = len(documents[i][1])
        room = [k for k in (0, 1) if sizes[k] < target and sizes[k] + size <= 1.2 * target]
        if room:
            held[room[0]].append(i)
            sizes[room[0]] += size
        else:
            train.append(i)
    for bucket in held:  # every document was too large: take the smallest one left
        if not bucket and train:
            smallest = min(train, key=lambda i: len(documents[i][1]))
            train.remove(smallest)
            bucket.append(smallest)
    if not train:
        raise EdgenasError(
            f"no document is left for training after validation and test took {val_fraction:.0%} each; "
            "lower data.val_fraction or add text"
        )
    val, test = (sorted(b) for b in held)
    return ([documents[i] for i in sorted(train)], [documents[i] for i in val], [documents[i] for i in test])


def _join(documents: list[Document]) -> torch.Tensor:
    data = SEPARATOR.join(d for _, d in documents)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)


def load_text_splits(cfg: DataConfig, seed: int, context: int) -> TextSplits:
    """Read the corpus ``cfg`` names and split it by document (deterministic in ``seed``).

    Every split must hold at least one window of ``context + 1`` bytes.
    """
    documents = pydoc_documents() if cfg.name == "pydoc" else read_documents(cfg.path or "")
    train, val, test = split_documents(documents, cfg.val_fraction, seed)
    tensors = {"train": _join(train), "validation": _join(val), "test": _join(test)}
    if cfg.limit is not None:
        tensors["train"] = tensors["train"][: cfg.limit]
    for name, tensor in tensors.items():
        if tensor.numel() < context + 1:
            fix = "raise data.limit" if name == "train" and cfg.limit is not None else "add text"
            raise EdgenasError(
                f"the {name} split of {cfg.name} holds {tensor.numel()} bytes, fewer than one window of "
                f"{context + 1} (context + 1): {fix}, or train a space with shorter contexts"
            )
    return TextSplits(
        name=cfg.name,
        train=tensors["train"],
        validation=tensors["validation"],
        test=tensors["test"],
        documents={"train": len(train), "validation": len(val), "test": len(test)},
        context=context,
        eval_tokens=cfg.eval_tokens or DEFAULT_EVAL_TOKENS,
    )


def windows(stream: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """``(len(starts), length)`` int64 tokens: the bytes of ``stream`` from each start."""
    return stream[starts[:, None] + torch.arange(length)].long()


def text_train_batches(
    stream: torch.Tensor,
    context: int,
    device: torch.device,
    *,
    seed: int,
    start_step: int,
    global_batch: int,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[Batch]:
    """This rank's share of every training batch from ``start_step`` on (endless).

    Step ``s`` draws ``global_batch`` window offsets from a generator seeded by
    ``(seed, s)``; rank ``r`` takes the ``r``-th contiguous share.
    """
    local = global_batch // world_size
    first = rank * local
    high = stream.numel() - context  # offsets 0 .. high - 1 leave room for context + 1 bytes
    step = start_step
    while True:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(0, high, (global_batch,), generator=gen)[first : first + local]
        tokens = windows(stream, starts, context + 1).to(device, non_blocking=True)
        yield tokens[:, :-1], tokens[:, 1:]
        step += 1


class TextEvalBatches(Iterable[Batch]):
    """Consecutive windows from the start of a split, about ``max_tokens`` targets in all.

    Window ``i`` predicts bytes ``i * context + 1 .. (i + 1) * context``, so every target is
    predicted once; the number of windows is ``ceil(max_tokens / context)``, fewer if the
    split is shorter. Iterate it as often as needed: the batches are always the same.
    """

    def __init__(self, stream: torch.Tensor, context: int, batch_size: int, max_tokens: int,
                 device: torch.device) -> None:
        available = (stream.numel() - 1) // context
        self.count = max(1, min(available, math.ceil(max_tokens / context)))
        self.stream, self.context, self.batch_size, self.device = stream, context, batch_size, device

    @property
    def tokens(self) -> int:
        """Targets predicted in one pass."""
        return self.count * self.context

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        for lo in range(0, self.count, self.batch_size):
            starts = torch.arange(lo, min(self.count, lo + self.batch_size)) * self.context
            tokens = windows(self.stream, starts, self.context + 1).to(self.device, non_blocking=True)
            yield tokens[:, :-1], tokens[:, 1:]


def encode(text: str) -> torch.Tensor:
    """UTF-8 bytes of ``text`` as int64 token ids."""
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


def decode(tokens: Iterable[int] | torch.Tensor) -> str:
    """Text from byte tokens (a byte sequence that is not valid UTF-8 shows as U+FFFD)."""
    values = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
    return bytes(int(v) for v in values).decode("utf-8", errors="replace")
