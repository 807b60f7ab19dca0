"""The flow: data, supernet training, evaluation, search, fine-tuning, registry, reports, CLI."""

from nas.errors import EdgenasError

__all__ = ["EdgenasError"]
