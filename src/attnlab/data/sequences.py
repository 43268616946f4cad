"""Token-sequence tasks for watching attention learn (chapter 3 and lab 3).

``previous_token``: the target at position t is the token at position t - 1. A causal attention
layer solves it only by learning to look one step back, so its trained weights show a clean
sub-diagonal: the simplest picture of a head that has learned *where* to look.

``reverse``: the target at position t is the token at position T - 1 - t. Every position must
find its mirror image, so the model has to use the positional encoding; chapter 3 trains deep
post-norm and pre-norm stacks on it, with and without learning-rate warm-up.
"""

from __future__ import annotations

import torch

from .tokens import IGNORE_INDEX

__all__ = ["previous_token_batch", "reverse_batch"]


def previous_token_batch(
    batch_size: int, seq_len: int, vocab_size: int, *, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the previous-token task.

    Returns:
        tokens: (B, T) int64 in [0, vocab_size).
        targets: (B, T) int64; ``targets[:, t] = tokens[:, t-1]``, ``targets[:, 0] = IGNORE_INDEX``
            (position 0 has no previous token).
    """
    if seq_len < 2 or vocab_size < 2:
        raise ValueError(f"need seq_len >= 2 and vocab_size >= 2, got {seq_len}, {vocab_size}")
    tokens = torch.randint(vocab_size, (batch_size, seq_len), generator=generator)
    targets = torch.full_like(tokens, IGNORE_INDEX)
    targets[:, 1:] = tokens[:, :-1]
    return tokens, targets


def reverse_batch(
    batch_size: int, seq_len: int, vocab_size: int, *, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the reverse task.

    Returns:
        tokens: (B, T) int64 in [0, vocab_size).
        targets: (B, T) int64; ``targets[:, t] = tokens[:, T - 1 - t]``.
    """
    if seq_len < 2 or vocab_size < 2:
        raise ValueError(f"need seq_len >= 2 and vocab_size >= 2, got {seq_len}, {vocab_size}")
    tokens = torch.randint(vocab_size, (batch_size, seq_len), generator=generator)
    return tokens, tokens.flip(1)
