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

Chapter 6: :func:`swin_to_torchvision` and :func:`swin_from_torchvision` copy a
:class:`attnlab.swin.SwinTransformer` into ``torchvision.models.SwinTransformer`` (what
``torchvision.models.swin_t`` builds) and back. torchvision keeps everything in one ``features``
sequence: ``features.0`` the patch embedding and its norm, ``features.{2i+1}`` the blocks of stage i,
``features.{2i}`` the patch merging before it; a block's ``norm1``, ``attn.proj``, ``mlp.0`` and
``mlp.3`` are our ``attn_block.norm``, ``attn.out_proj``, ``ffn.linear1`` and ``ffn.linear2``.
"""

from __future__ import annotations

import re
import warnings

import torch
from torch import nn

from .attention import MultiHeadAttention
from .swin import SwinTransformer
from .transformer import AddNorm, DecoderLayer, EncoderLayer, Transformer

__all__ = ["mha_to_torch", "encoder_layer_to_torch", "decoder_layer_to_torch", "transformer_to_torch",
           "torch_state_dict", "package_state_dict", "swin_state_dict_names", "swin_to_torchvision",
           "swin_from_torchvision"]


# our names -> torch's, besides q/k/v and cross_attn (torch_state_dict handles those)
_ENCODER_NAMES = {"attn_block.norm.": "norm1.", "ffn_block.norm.": "norm2.", "ffn.": ""}
_DECODER_NAMES = {"self_attn_block.norm.": "norm1.", "cross_attn_block.norm.": "norm2.",
                  "ffn_block.norm.": "norm3.", "ffn.": ""}


def _renamed(module: nn.Module, names: dict[str, str], prefix: str = "") -> dict[str, torch.Tensor]:
    """``module``'s state dict in torch's names, each key preceded by ``prefix``."""
    state = {}
    for key, value in module.state_dict().items():
        for ours, theirs in names.items():
            if key.startswith(ours):
                key = theirs + key[len(ours):]
                break
        state[prefix + key] = value
    return torch_state_dict(state)


def _like(ref: nn.Module, source: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load ``state`` (strictly: every key must match) and give ``ref`` the source's dtype, device, mode."""
    p = next(source.parameters())
    ref = ref.to(device=p.device, dtype=p.dtype)
    ref.load_state_dict(state)
    return ref.train(source.training)


def _layer_sizes(layer: EncoderLayer | DecoderLayer) -> dict:
    mha, first = layer.self_attn, next(m for m in layer.modules() if isinstance(m, AddNorm))
    return dict(d_model=mha.dim, nhead=mha.num_heads, dim_feedforward=layer.ffn.linear1.out_features,
                dropout=first.dropout.p, activation=layer.ffn.activation, layer_norm_eps=first.norm.eps,
                batch_first=True, norm_first=first.norm_first)


def mha_to_torch(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """A ``torch.nn.MultiheadAttention`` (batch first) with the weights of ``mha``."""
    return _like(nn.MultiheadAttention(mha.dim, mha.num_heads, batch_first=True), mha, _renamed(mha, {}))


def encoder_layer_to_torch(layer: EncoderLayer) -> nn.TransformerEncoderLayer:
    """A ``torch.nn.TransformerEncoderLayer`` (batch first) computing what ``layer`` computes."""
    return _like(nn.TransformerEncoderLayer(**_layer_sizes(layer)), layer, _renamed(layer, _ENCODER_NAMES))


def decoder_layer_to_torch(layer: DecoderLayer) -> nn.TransformerDecoderLayer:
    """A ``torch.nn.TransformerDecoderLayer`` (batch first) computing what ``layer`` computes."""
    return _like(nn.TransformerDecoderLayer(**_layer_sizes(layer)), layer, _renamed(layer, _DECODER_NAMES))


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
        state.update(_renamed(layer, _ENCODER_NAMES, f"encoder.layers.{i}."))
    for i, layer in enumerate(decoder.layers):
        state.update(_renamed(layer, _DECODER_NAMES, f"decoder.layers.{i}."))
    if sizes["norm_first"]:
        state.update(_renamed(encoder.norm, {}, "encoder.norm."))
        state.update(_renamed(decoder.norm, {}, "decoder.norm."))
    else:                                  # post-norm: the paper's stacks end with their last layer's norm
        ref.encoder.norm = None
        ref.decoder.norm = None
    return _like(ref, model, state)


def torch_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a state dict written with torch's layer names but separate projections (lab 3's layers).

    Every ``<p>q_proj.*``, ``<p>k_proj.*``, ``<p>v_proj.*`` triple becomes ``<p>in_proj_weight`` /
    ``<p>in_proj_bias`` (stacked q, k, v), and ``cross_attn.`` becomes ``multihead_attn.``; other
    keys (``linear1``, ``norm1``, ``out_proj``...) are kept.
    """
    out = {}
    for key, value in state.items():
        match = re.fullmatch(r"(.*)([qkv])_proj\.(weight|bias)", key)      # prefix, q/k/v, weight/bias
        if match is None:
            out[key] = value
        elif match[2] == "q":                                               # k and v join q's entry
            prefix, kind = match[1], match[3]
            out[f"{prefix}in_proj_{kind}"] = torch.cat([state[f"{prefix}{c}_proj.{kind}"] for c in "qkv"])
    return {k.replace("cross_attn.", "multihead_attn."): v for k, v in out.items()}


def package_state_dict(state: dict[str, torch.Tensor], *, decoder: bool = False) -> dict[str, torch.Tensor]:
    """The other way, for a layer written with torch's names and separate q/k/v projections (lab 3's):
    the state dict of the package's :class:`EncoderLayer` (or, with ``decoder``, :class:`DecoderLayer`)."""
    names = {theirs: ours for ours, theirs in (_DECODER_NAMES if decoder else _ENCODER_NAMES).items() if theirs}
    out = {}
    for key, value in state.items():
        key = key.replace("multihead_attn.", "cross_attn.")
        theirs = next((t for t in names if key.startswith(t)), None)
        if theirs is not None:
            key = names[theirs] + key[len(theirs):]                          # norm1. -> attn_block.norm. ...
        elif key.startswith(("linear1.", "linear2.")):
            key = "ffn." + key                                               # the FFN's two layers
        out[key] = value
    return out


# ------------------------------------------------------------------------------ Swin (chapter 6)
_SWIN_BLOCK_NAMES = {"attn_block.norm.": "norm1.", "ffn_block.norm.": "norm2.", "attn.out_proj.": "attn.proj.",
                     "attn.relative_position_bias.table": "attn.relative_position_bias_table",
                     "ffn.linear1.": "mlp.0.", "ffn.linear2.": "mlp.3."}


def _swin_key(key: str) -> str:
    """One key of our Swin's state dict in torchvision's name."""
    block = re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(.*)", key)              # stage i, block j, the rest
    if block:
        rest = next((theirs + block[3][len(ours):] for ours, theirs in _SWIN_BLOCK_NAMES.items()
                     if block[3].startswith(ours)), block[3])
        return f"features.{2 * int(block[1]) + 1}.{block[2]}.{rest}"
    merge = re.fullmatch(r"stages\.(\d+)\.merge\.(.*)", key)
    if merge:
        return f"features.{2 * int(merge[1])}.{merge[2]}"
    for ours, theirs in (("patch_embed.proj.", "features.0.0."), ("patch_norm.", "features.0.2.")):
        if key.startswith(ours):
            return theirs + key[len(ours):]
    return key                                                                      # norm.*, head.*


def swin_state_dict_names(model: SwinTransformer) -> dict[str, str]:
    """Our state-dict key -> torchvision's, for every key of ``model``."""
    return {key: _swin_key(key) for key in model.state_dict()}


def _swin_sizes(ref: nn.Module) -> dict:
    """The constructor arguments of our SwinTransformer that rebuild torchvision's ``ref``."""
    stages = [ref.features[i] for i in range(1, len(ref.features), 2)]
    dim = ref.features[0][0].out_channels
    return dict(patch_size=ref.features[0][0].kernel_size[0], dim=dim, depths=tuple(len(s) for s in stages),
                num_heads=tuple(s[0].attn.num_heads for s in stages), window_size=stages[0][0].attn.window_size[0],
                ffn_ratio=stages[0][0].mlp[0].out_features / dim, num_classes=ref.head.out_features)


def _check_same_windows(model: SwinTransformer, window_size: int) -> None:
    for i, stage in enumerate(model.stages):
        if stage.blocks[0].window_size != window_size:
            raise ValueError(f"stage {i + 1}'s map {stage.blocks[0].resolution} is smaller than the window "
                             f"{window_size}: torchvision pads it with zeros, this package shrinks the window "
                             "(the paper's code), so the two models differ; use a larger image")


def swin_to_torchvision(model: SwinTransformer) -> nn.Module:
    """A ``torchvision.models.SwinTransformer`` (no stochastic depth) computing what ``model`` computes."""
    from torchvision.models.swin_transformer import SwinTransformer as TVSwin

    first = model.stages[0].blocks[0]
    window = first.window_size
    _check_same_windows(model, window)
    ref = TVSwin(patch_size=[model.patch_embed.patch_size] * 2, embed_dim=model.patch_embed.proj.out_channels,
                 depths=[len(s.blocks) for s in model.stages], num_heads=[s.blocks[0].attn.num_heads for s in model.stages],
                 window_size=[window, window], mlp_ratio=first.ffn.linear1.out_features / first.ffn.linear1.in_features,
                 stochastic_depth_prob=0.0, num_classes=model.head.out_features)
    names = swin_state_dict_names(model)
    state = {names[k]: v for k, v in model.state_dict().items()}
    for i, stage in enumerate(model.stages):                                        # torchvision saves its index
        for j, block in enumerate(stage.blocks):
            state[f"features.{2 * i + 1}.{j}.attn.relative_position_index"] = block.attn.relative_position_bias.index.flatten()
    return _like(ref, model, state)


def swin_from_torchvision(ref: nn.Module, *, image_size: int) -> SwinTransformer:
    """The package's :class:`~attnlab.swin.SwinTransformer` with the weights of torchvision's ``ref``
    (e.g. ``torchvision.models.swin_t()``), for ``image_size`` x ``image_size`` images.

    Raises ValueError where the two would differ: a stage map smaller than the window (see
    :func:`_check_same_windows`) or not a multiple of it.
    """
    sizes = _swin_sizes(ref)
    model = SwinTransformer(image_size=image_size, **sizes)
    _check_same_windows(model, sizes["window_size"])
    theirs = ref.state_dict()
    names = swin_state_dict_names(model)
    model.load_state_dict({ours: theirs[tv] for ours, tv in names.items()})
    p = next(ref.parameters())
    return model.to(device=p.device, dtype=p.dtype).train(ref.training)
