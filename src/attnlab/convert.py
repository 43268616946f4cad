"""Weight converters: copies of the package's modules into PyTorch's own (chapter 3).

They make PyTorch an *independent reference*: the tests and the book build ``torch.nn`` modules of
the same sizes, copy our weights into them, and check that both compute the same numbers. A
converter returns a new torch module with the source's dtype, device and train/eval mode.

Names, ours -> torch's: ``q_proj``, ``k_proj``, ``v_proj`` -> one stacked ``in_proj_weight``
(3D, D) and ``in_proj_bias``; ``attn_block.norm`` -> ``norm1``; ``ffn.linear1`` -> ``linear1``;
the decoder's ``cross_attn`` -> ``multihead_attn``. ``torch.nn.Transformer`` always ends each stack
with a LayerNorm; a post-norm stack (the paper's) has none, so the copy of a post-norm model has
``encoder.norm = decoder.norm = None``.

Differences that only dropout shows (so equality is checked with dropout 0): torch also applies
dropout to the attention weights; this package does not (neither does the paper).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .attention import MultiHeadAttention
from .transformer import AddNorm, DecoderLayer, EncoderLayer, FeedForward, Transformer

__all__ = ["mha_to_torch", "encoder_layer_to_torch", "decoder_layer_to_torch", "transformer_to_torch"]


def _mha_state(mha: MultiHeadAttention, prefix: str) -> dict[str, torch.Tensor]:
    """The state of ``torch.nn.MultiheadAttention`` holding the weights of ``mha``."""
    return {
        f"{prefix}in_proj_weight": torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]),
        f"{prefix}in_proj_bias": torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]),
        f"{prefix}out_proj.weight": mha.out_proj.weight,
        f"{prefix}out_proj.bias": mha.out_proj.bias,
    }


def _block_state(block: AddNorm, name: str) -> dict[str, torch.Tensor]:
    return {f"{name}.weight": block.norm.weight, f"{name}.bias": block.norm.bias}


def _ffn_state(ffn: FeedForward) -> dict[str, torch.Tensor]:
    return dict(ffn.state_dict())                                    # linear1.*, linear2.*: torch's names


def _like(ref: nn.Module, source: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load ``state`` (strictly: every key must match) and give ``ref`` the source's dtype, device, mode."""
    p = next(source.parameters())
    ref = ref.to(device=p.device, dtype=p.dtype)
    ref.load_state_dict({k: v.detach() for k, v in state.items()})
    return ref.train(source.training)


def _layer_sizes(layer: EncoderLayer | DecoderLayer) -> dict:
    mha, first = layer.self_attn, next(m for m in layer.modules() if isinstance(m, AddNorm))
    return dict(d_model=mha.dim, nhead=mha.num_heads, dim_feedforward=layer.ffn.linear1.out_features,
                dropout=first.dropout.p, activation=layer.ffn.activation, layer_norm_eps=first.norm.eps,
                batch_first=True, norm_first=first.norm_first)


def mha_to_torch(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """A ``torch.nn.MultiheadAttention`` (batch first) with the weights of ``mha``."""
    ref = nn.MultiheadAttention(mha.dim, mha.num_heads, batch_first=True)
    return _like(ref, mha, _mha_state(mha, ""))


def _encoder_layer_state(layer: EncoderLayer, prefix: str = "") -> dict[str, torch.Tensor]:
    state = {**_mha_state(layer.self_attn, "self_attn."), **_block_state(layer.attn_block, "norm1"),
             **_ffn_state(layer.ffn), **_block_state(layer.ffn_block, "norm2")}
    return {prefix + k: v for k, v in state.items()}


def _decoder_layer_state(layer: DecoderLayer, prefix: str = "") -> dict[str, torch.Tensor]:
    state = {**_mha_state(layer.self_attn, "self_attn."), **_block_state(layer.self_attn_block, "norm1"),
             **_mha_state(layer.cross_attn, "multihead_attn."), **_block_state(layer.cross_attn_block, "norm2"),
             **_ffn_state(layer.ffn), **_block_state(layer.ffn_block, "norm3")}
    return {prefix + k: v for k, v in state.items()}


def encoder_layer_to_torch(layer: EncoderLayer) -> nn.TransformerEncoderLayer:
    """A ``torch.nn.TransformerEncoderLayer`` (batch first) computing what ``layer`` computes."""
    return _like(nn.TransformerEncoderLayer(**_layer_sizes(layer)), layer, _encoder_layer_state(layer))


def decoder_layer_to_torch(layer: DecoderLayer) -> nn.TransformerDecoderLayer:
    """A ``torch.nn.TransformerDecoderLayer`` (batch first) computing what ``layer`` computes."""
    return _like(nn.TransformerDecoderLayer(**_layer_sizes(layer)), layer, _decoder_layer_state(layer))


def transformer_to_torch(model: Transformer) -> nn.Transformer:
    """A ``torch.nn.Transformer`` with the encoder and decoder stacks of ``model``.

    torch's module has no embeddings and no output projection: ``model(src, tgt_in, pad)`` equals
    ``model.out_proj(ref(x, y, tgt_mask=..., src_key_padding_mask=pad, memory_key_padding_mask=pad))``
    with ``x``, ``y`` the embedded (and position-encoded) source and target.
    """
    encoder, decoder = model.encoder, model.decoder
    sizes = _layer_sizes(encoder.layers[0])
    with warnings.catch_warnings():        # torch warns that pre-norm layers cannot use its nested-tensor path
        warnings.simplefilter("ignore", UserWarning)
        ref = nn.Transformer(num_encoder_layers=len(encoder.layers), num_decoder_layers=len(decoder.layers), **sizes)
    state = {}
    for i, layer in enumerate(encoder.layers):
        state.update(_encoder_layer_state(layer, f"encoder.layers.{i}."))
    for i, layer in enumerate(decoder.layers):
        state.update(_decoder_layer_state(layer, f"decoder.layers.{i}."))
    if sizes["norm_first"]:
        state.update({f"encoder.norm.{k}": v for k, v in encoder.norm.state_dict().items()})
        state.update({f"decoder.norm.{k}": v for k, v in decoder.norm.state_dict().items()})
    else:                                  # post-norm: the paper's stacks end with their last layer's norm
        ref.encoder.norm = None
        ref.decoder.norm = None
    return _like(ref, model, state)
