"""Honest answers written as students write them (issue 22, item 4): each a complete, correct answer
to one exercise of a real lab, in a style the old in-kernel rules zeroed (the first eleven) or that
any Python programmer may use. None is the course's solution: each computes the exercise its own way
or with debugging left in. The grading tests give every one of them to a student of an otherwise
solved notebook and require the lab's full marks (tests/test_grading_honest.py).

``HONEST``: name -> (lab, exercise grade id, the answer cell's source).
"""

from __future__ import annotations

import textwrap

HONEST: dict[str, tuple[str, str, str]] = {}


def honest(name: str, lab: str, exercise: str, source: str) -> None:
    assert name not in HONEST, name
    HONEST[name] = (lab, exercise, textwrap.dedent(source).lstrip("\n"))


# -- the eleven styles the old grader zeroed (issue 22) ------------------------------------------

honest("private_last_weights", "lab03_transformer", "ex3_mha", '''
    class MultiHeadAttention(nn.Module):
        def __init__(self, *, dim, num_heads):
            super().__init__()
            assert dim % num_heads == 0, "dim must be divisible by num_heads"
            self.dim, self.num_heads = dim, num_heads
            self.q_proj = nn.Linear(dim, dim)
            self.k_proj = nn.Linear(dim, dim)
            self.v_proj = nn.Linear(dim, dim)
            self.out_proj = nn.Linear(dim, dim)
            self._last_weights = None  # kept to plot the heads later

        def forward(self, query, key=None, value=None, *, mask=None, need_weights=False):
            key = query if key is None else key
            value = key if value is None else value
            heads = [split_heads(proj(t), self.num_heads)
                     for proj, t in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value))]
            context, self._last_weights = scaled_dot_product_attention(*heads, mask)
            result = self.out_proj(merge_heads(context))
            if need_weights:
                return result, self._last_weights
            return result
''')

honest("helper_parameter_named_input", "lab03_transformer", "ex6_layer_norm", '''
    def _moments(input):
        """Mean and (biased) variance over the last axis."""
        mu = input.mean(dim=-1, keepdim=True)
        return mu, ((input - mu) * (input - mu)).mean(dim=-1, keepdim=True)


    def layer_norm(x, weight, bias, eps=1e-5):
        mu, var = _moments(x)
        return weight * (x - mu) * torch.rsqrt(var + eps) + bias
''')

honest("getattr_activation", "lab03_transformer", "ex7_encoder_layer", '''
    class EncoderLayer(nn.Module):
        def __init__(self, *, dim, num_heads, ffn_dim, dropout=0.0, norm_first=False, activation="relu"):
            super().__init__()
            self.self_attn = MultiHeadAttention(dim=dim, num_heads=num_heads)
            self.linear1 = nn.Linear(dim, ffn_dim)
            self.linear2 = nn.Linear(ffn_dim, dim)
            self.norm1 = nn.LayerNorm(dim)
            self.norm2 = nn.LayerNorm(dim)
            self.dropout = nn.Dropout(dropout)
            self.activation = getattr(F, activation)   # "relu" -> F.relu, "gelu" -> F.gelu
            self.norm_first = norm_first

        def feed_forward(self, x):
            hidden = self.activation(self.linear1(x))
            return self.linear2(self.dropout(hidden))

        def forward(self, x, *, mask=None):
            attend = lambda h: self.dropout(self.self_attn(h, mask=mask))
            ffn = lambda h: self.dropout(self.feed_forward(h))
            if self.norm_first:
                x = x + attend(self.norm1(x))
                return x + ffn(self.norm2(x))
            x = self.norm1(x + attend(x))
            return self.norm2(x + ffn(x))
''')

honest("module_init_called_directly", "lab06_swin", "ex4_merging", '''
    class PatchMerging(nn.Module):
        def __init__(self, *, dim):
            nn.Module.__init__(self)
            self.norm = nn.LayerNorm(4 * dim)
            self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

        def forward(self, x):
            quarters = [x[:, i::2, j::2] for j in (0, 1) for i in (0, 1)]   # (0,0), (1,0), (0,1), (1,1)
            return self.reduction(self.norm(torch.cat(quarters, dim=-1)))
''')

honest("future_annotations", "lab00_cnn", "ex1_output_size", '''
    from __future__ import annotations


    def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
        padded: int = size + 2 * padding
        return (padded - kernel) // stride + 1
''')

honest("display_left_in", "lab04_vit", "ex2_embed_patches", '''
    def embed_patches(images, conv_weight, conv_bias, patch_size):
        D = conv_weight.shape[0]
        kernel_as_rows = conv_weight.permute(0, 2, 3, 1).reshape(D, -1)      # (D, P*P*C) in (P, P, C) order
        return torch.einsum("bnk,dk->bnd", patchify(images, patch_size), kernel_as_rows) + conv_bias


    display(embed_patches(torch.zeros(1, 3, 4, 4), torch.zeros(5, 3, 2, 2), torch.zeros(5), 2).shape)
''')

honest("imshow_left_in", "lab04_vit", "ex1_patchify", '''
    def patchify(images, patch_size):
        B, C, H, W = images.shape
        P = patch_size
        if H % P != 0 or W % P != 0:
            raise ValueError(f"{H} x {W} does not split into {P} x {P} patches")
        rows = []
        for i in range(H // P):
            for j in range(W // P):
                patch = images[:, :, i * P:(i + 1) * P, j * P:(j + 1) * P]    # (B, C, P, P)
                rows.append(patch.permute(0, 2, 3, 1).reshape(B, -1))        # (B, P*P*C)
        return torch.stack(rows, dim=1)


    _demo = patchify(torch.rand(1, 3, 8, 8), 4)
    plt.imshow(_demo[0, 0].reshape(4, 4, 3).numpy())
    plt.title("first patch")
    plt.show()
''')

honest("check_shape_self_check", "lab06_swin", "ex1_windows", '''
    def window_partition(x, window_size):
        B, H, W, C = x.shape
        M = window_size
        tiles = x.reshape(B, H // M, M, W // M, M, C).transpose(2, 3)          # (B, H/M, W/M, M, M, C)
        out = tiles.reshape(B, -1, M * M, C)
        G.check_shape(out, (B, (H // M) * (W // M), M * M, C), "my windows")
        return out


    def window_reverse(windows, window_size, height, width):
        B, nW, N, C = windows.shape
        M = window_size
        grid = windows.reshape(B, height // M, width // M, M, M, C).transpose(2, 3)
        out = grid.reshape(B, height, width, C)
        G.check_shape(out, (B, height, width, C), "my image")
        return out
''')

honest("no_grad_decorator", "lab03_transformer", "ex4_causal", '''
    @torch.no_grad()
    def causal_mask(t):
        return torch.ones(t, t).triu(diagonal=1).bool()
''')

honest("imports_scipy_signal", "lab00_cnn", "ex1_output_size", '''
    import scipy.signal


    def conv_output_size(size, kernel, stride=1, padding=0):
        # slide a ones-kernel over a padded ones-signal and count the window positions kept
        positions = scipy.signal.correlate(np.ones(size + 2 * padding), np.ones(kernel), mode="valid")
        return len(positions[::stride])
''')

honest("imports_scipy_stats", "lab00_cnn", "ex4_avg_pool2d", '''
    import math

    import scipy.stats


    def avg_pool2d(x, kernel, stride=None):
        stride = kernel if stride is None else stride
        windows = x.unfold(2, kernel, stride).unfold(3, kernel, stride)    # (B, C, Ho, Wo, K, K)
        return windows.mean(dim=(-2, -1))


    _demo = torch.arange(4.0).reshape(1, 1, 2, 2)
    assert math.isclose(avg_pool2d(_demo, 2).item(), scipy.stats.tmean(_demo.flatten().numpy()))
''')

honest("imports_torchvision_v2", "lab07_self_supervision", "ex2_causal_lm_loss", '''
    from torchvision.transforms import v2  # for the augmentations later on


    def causal_lm_loss(logits, tokens, pad_id=PAD_ID):
        log_probs = F.log_softmax(logits[:, :-1], dim=-1)                   # (B, T-1, V)
        targets = tokens[:, 1:]
        keep = (targets != pad_id) & (targets != IGNORE_INDEX)
        picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return -picked[keep].mean()
''')

# -- more styles of our own ------------------------------------------------------------------------

honest("math_floor", "lab00_cnn", "ex1_output_size", '''
    import math


    def conv_output_size(size, kernel, stride=1, padding=0):
        return math.floor((size + 2 * padding - kernel) / stride) + 1
''')

honest("conv_as_sum_over_offsets", "lab00_cnn", "ex2_conv2d", '''
    def conv2d(x, weight, bias=None, *, stride=1, padding=0):
        C_out, C, K, _ = weight.shape
        x = F.pad(x, (padding, padding, padding, padding))
        Ho = (x.shape[2] - K) // stride + 1
        Wo = (x.shape[3] - K) // stride + 1
        # one term per kernel offset (i, j): the pixels that offset sees, times its weights
        out = sum(torch.einsum("bchw,oc->bohw",
                               x[:, :, i:i + stride * (Ho - 1) + 1:stride, j:j + stride * (Wo - 1) + 1:stride],
                               weight[:, :, i, j])
                  for i in range(K) for j in range(K))
        if bias is not None:
            out = out + bias.view(1, -1, 1, 1)
        return out
''')

honest("tensor_unfold_max", "lab00_cnn", "ex3_max_pool2d", '''
    def max_pool2d(x, kernel, stride=None):
        stride = stride or kernel
        patches = x.unfold(2, kernel, stride).unfold(3, kernel, stride)    # (B, C, Ho, Wo, K, K)
        return patches.flatten(start_dim=-2).max(dim=-1).values
''')

honest("list_of_shifted_views", "lab00_cnn", "ex4_avg_pool2d", '''
    def avg_pool2d(x, kernel, stride=None):
        if stride is None:
            stride = kernel
        Ho = (x.shape[2] - kernel) // stride + 1
        Wo = (x.shape[3] - kernel) // stride + 1
        views = [x[:, :, i:i + stride * (Ho - 1) + 1:stride, j:j + stride * (Wo - 1) + 1:stride]
                 for i in range(kernel) for j in range(kernel)]
        return torch.stack(views).mean(dim=0)
''')

honest("super_with_class_and_extra_method", "lab00_cnn", "ex5_residual_block", '''
    class ResidualBlock(nn.Module):
        """ResNet's basic block with an identity shortcut: y = ReLU(F(x) + x)."""

        def __init__(self, *, channels):
            super(ResidualBlock, self).__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)

        def branch(self, x):
            """F(x), the residual branch."""
            h = torch.relu(self.bn1(self.conv1(x)))
            return self.bn2(self.conv2(h))

        def forward(self, x):
            return torch.relu(self.branch(x) + x)
''')

honest("private_module_constant", "lab03_transformer", "ex1_sdpa", '''
    _BLOCKED = float("-inf")


    def scaled_dot_product_attention(q, k, v, mask=None):
        scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        if mask is not None:
            scores = scores.masked_fill(mask, _BLOCKED)
        weights = scores.softmax(dim=-1)
        weights = torch.where(torch.isnan(weights), torch.zeros_like(weights), weights)  # rows with no key
        return weights @ v, weights
''')

honest("einops_heads", "lab03_transformer", "ex2_heads", '''
    from einops import rearrange


    def split_heads(x, num_heads):
        return rearrange(x, "b t (h d) -> b h t d", h=num_heads)


    def merge_heads(x):
        return rearrange(x, "b h t d -> b t (h d)")
''')

honest("broadcast_comparison", "lab03_transformer", "ex4_causal", '''
    def causal_mask(t):
        position = torch.arange(t)
        return position[None, :] > position[:, None]      # key index > query index
''')

honest("lru_cache_frequencies", "lab03_transformer", "ex5_positions", '''
    import functools


    @functools.lru_cache(maxsize=None)
    def _frequencies(dim):
        return tuple(1.0 / math.pow(10000.0, i / dim) for i in range(0, dim, 2))


    def sinusoidal_positions(length, dim):
        angles = torch.arange(length, dtype=torch.float64)[:, None] * torch.tensor(_frequencies(dim), dtype=torch.float64)
        table = torch.stack([angles.sin(), angles.cos()], dim=-1)        # (T, D/2, 2): sin, cos interleaved
        return table.reshape(length, dim).to(torch.float32)
''')

honest("numpy_round_trip", "lab03_transformer", "ex5_positions", '''
    import numpy as np


    def sinusoidal_positions(length, dim):
        pos = np.arange(length, dtype=np.float64)[:, None]
        i = np.arange(0, dim, 2, dtype=np.float64)
        table = np.zeros((length, dim), dtype=np.float64)
        table[:, 0::2] = np.sin(pos / 10000 ** (i / dim))
        table[:, 1::2] = np.cos(pos / 10000 ** (i / dim))
        return torch.from_numpy(table.astype(np.float32))
''')

honest("type_hints_and_asserts", "lab03_transformer", "ex6_layer_norm", '''
    from torch import Tensor


    def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
        assert weight.shape == bias.shape == x.shape[-1:], "one weight and one bias per feature"
        var = torch.var(x, dim=-1, keepdim=True, correction=0)
        centred = x - x.mean(dim=-1, keepdim=True)
        return centred / (var + eps).sqrt() * weight + bias
''')

honest("helper_methods_like_torch", "lab03_transformer", "ex7_encoder_layer", '''
    class EncoderLayer(nn.Module):
        def __init__(self, *, dim, num_heads, ffn_dim, dropout=0.0, norm_first=False, activation="relu"):
            super().__init__()
            self.self_attn = MultiHeadAttention(dim=dim, num_heads=num_heads)
            self.linear1 = nn.Linear(dim, ffn_dim)
            self.linear2 = nn.Linear(ffn_dim, dim)
            self.norm1 = nn.LayerNorm(dim)
            self.norm2 = nn.LayerNorm(dim)
            self.dropout = nn.Dropout(dropout)
            self.activation = F.relu if activation == "relu" else F.gelu
            self.norm_first = norm_first

        def feed_forward(self, x):
            return self.linear2(self.dropout(self.activation(self.linear1(x))))

        def _sa_block(self, x, mask):
            return self.dropout(self.self_attn(x, mask=mask))

        def _ff_block(self, x):
            return self.dropout(self.feed_forward(x))

        def forward(self, x, *, mask=None):
            if self.norm_first:
                x = x + self._sa_block(self.norm1(x), mask)
                x = x + self._ff_block(self.norm2(x))
            else:
                x = self.norm1(x + self._sa_block(x, mask))
                x = self.norm2(x + self._ff_block(x))
            return x
''')

honest("prints_shapes", "lab03_transformer", "ex8_decoder_layer", '''
    class DecoderLayer(nn.Module):
        def __init__(self, *, dim, num_heads, ffn_dim, dropout=0.0, norm_first=False, activation="relu"):
            super().__init__()
            self.self_attn = MultiHeadAttention(dim=dim, num_heads=num_heads)
            self.cross_attn = MultiHeadAttention(dim=dim, num_heads=num_heads)
            self.linear1 = nn.Linear(dim, ffn_dim)
            self.linear2 = nn.Linear(ffn_dim, dim)
            self.norm1 = nn.LayerNorm(dim)
            self.norm2 = nn.LayerNorm(dim)
            self.norm3 = nn.LayerNorm(dim)
            self.dropout = nn.Dropout(dropout)
            self.activation = F.relu if activation == "relu" else F.gelu
            self.norm_first = norm_first

        def feed_forward(self, x):
            return self.linear2(self.dropout(self.activation(self.linear1(x))))

        def forward(self, x, memory, *, tgt_mask=None, memory_mask=None):
            print("decoder:", tuple(x.shape), "memory:", tuple(memory.shape))
            sublayers = [
                (self.norm1, lambda h: self.self_attn(h, mask=tgt_mask)),
                (self.norm2, lambda h: self.cross_attn(h, memory, memory, mask=memory_mask)),
                (self.norm3, self.feed_forward),
            ]
            for norm, sublayer in sublayers:
                if self.norm_first:
                    x = x + self.dropout(sublayer(norm(x)))
                else:
                    x = norm(x + self.dropout(sublayer(x)))
            return x
''')

honest("cat_then_replace", "lab03_transformer", "ex9_shift_right", '''
    def shift_right(labels, sos_id=SOS_ID, pad_id=PAD_ID):
        start = torch.full_like(labels[:, :1], sos_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        shifted = shifted.clone()
        shifted[shifted == IGNORE_INDEX] = pad_id
        return shifted
''')

honest("repeat_instead_of_expand", "lab04_vit", "ex3_cls_positions", '''
    def add_cls_and_positions(patch_tokens, cls_token, pos_embed):
        batch = patch_tokens.size(0)
        cls = cls_token.repeat(batch, 1, 1)               # (B, 1, D)
        return torch.cat((cls, patch_tokens), dim=1) + pos_embed
''')

honest("no_grad_context_self_check", "lab04_vit", "ex4_encoder_block", '''
    class EncoderBlock(nn.Module):
        def __init__(self, *, dim, num_heads, mlp_dim, dropout=0.0, eps=1e-6):
            super().__init__()
            self.ln_1 = nn.LayerNorm(dim, eps=eps)
            self.self_attention = MultiHeadAttention(dim=dim, num_heads=num_heads)   # chapter 3's
            self.ln_2 = nn.LayerNorm(dim, eps=eps)
            self.mlp_1 = nn.Linear(dim, mlp_dim)
            self.mlp_2 = nn.Linear(mlp_dim, dim)
            self.dropout = nn.Dropout(dropout)

        def mlp(self, x):
            return self.mlp_2(self.dropout(F.gelu(self.mlp_1(x))))

        def forward(self, x, need_weights=False):
            attended = self.self_attention(self.ln_1(x), need_weights=need_weights)
            attended, weights = attended if need_weights else (attended, None)
            x = x + self.dropout(attended)
            x = x + self.dropout(self.mlp(self.ln_2(x)))
            if need_weights:
                return x, weights
            return x


    with torch.no_grad():
        _out = EncoderBlock(dim=8, num_heads=2, mlp_dim=16)(torch.randn(1, 3, 8))
    print("block output", _out.shape)
''')

honest("recursive_rollout", "lab04_vit", "ex5_rollout", '''
    def _block_matrix(w, residual):
        T = w.shape[-1]
        a = (1 - residual) * w.mean(dim=1) + residual * torch.eye(T, dtype=w.dtype, device=w.device)
        return a / a.sum(dim=-1, keepdim=True)


    def attention_rollout(weights, residual=0.5):
        if len(weights) == 1:
            return _block_matrix(weights[0], residual)
        return _block_matrix(weights[-1], residual) @ attention_rollout(weights[:-1], residual)
''')

honest("lambda_regions", "lab06_swin", "ex2_mask", '''
    def shifted_window_mask(height, width, window_size, shift):
        M, s = window_size, shift
        band = lambda v, size: 0 if v < size - M else (1 if v < size - s else 2)
        regions = torch.tensor([[3 * band(r, height) + band(c, width) for c in range(width)]
                                for r in range(height)])
        per_window = window_partition(regions.view(1, height, width, 1), M).view(-1, M * M)
        return per_window.unsqueeze(2) != per_window.unsqueeze(1)
''')

honest("meshgrid_index", "lab06_swin", "ex3_index", '''
    def relative_position_index(window_size):
        M = window_size
        rows, cols = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
        coords = torch.stack([rows.flatten(), cols.flatten()])            # (2, M*M)
        rel = coords[:, :, None] - coords[:, None, :] + (M - 1)           # (2, M*M, M*M), shifted to >= 0
        return rel[0] * (2 * M - 1) + rel[1]
''')

honest("private_cache_einsum", "lab06_swin", "ex5_attention", '''
    class WindowAttention(nn.Module):
        def __init__(self, *, dim, num_heads, window_size):
            super().__init__()
            self.num_heads, self.window_size = num_heads, window_size
            self.qkv = nn.Linear(dim, 3 * dim)
            self.out_proj = nn.Linear(dim, dim)
            self.table = nn.Parameter(torch.randn((2 * window_size - 1) ** 2, num_heads) * 0.02)
            self.register_buffer("index", relative_position_index(window_size))
            self._attn = None

        def forward(self, windows, mask=None):
            B, nW, N, C = windows.shape
            H = self.num_heads
            q, k, v = self.qkv(windows).chunk(3, dim=-1)                           # each (B, nW, N, C)
            q, k, v = (t.reshape(B, nW, N, H, C // H) for t in (q, k, v))
            scores = torch.einsum("bwqhd,bwkhd->bwhqk", q, k) / math.sqrt(C // H)
            scores = scores + self.table[self.index.view(-1)].view(N, N, H).permute(2, 0, 1)
            if mask is not None:
                scores = scores.masked_fill(mask.unsqueeze(1), float("-inf"))
            self._attn = scores.softmax(dim=-1)
            out = torch.einsum("bwhqk,bwkhd->bwqhd", self._attn, v).reshape(B, nW, N, C)
            return self.out_proj(out)
''')

honest("boolean_index_assignment", "lab07_self_supervision", "ex1_mask_tokens", '''
    def mask_tokens(tokens, *, vocab_size, generator, mask_prob=0.15):
        selected = torch.rand(tokens.shape, generator=generator) < mask_prob
        selected &= tokens >= FIRST_WORD_ID                     # never a special token
        labels = torch.full_like(tokens, IGNORE_INDEX)
        labels[selected] = tokens[selected]
        dice = torch.rand(tokens.shape, generator=generator)
        replacements = torch.randint(FIRST_WORD_ID, vocab_size, tokens.shape, generator=generator)
        inputs = tokens.clone()
        inputs[selected & (dice < 0.8)] = MASK_ID
        swap = selected & (dice >= 0.8) & (dice < 0.9)
        inputs[swap] = replacements[swap]
        return inputs, labels
''')

honest("scatter_restore", "lab07_self_supervision", "ex3_random_masking", '''
    def random_masking(x, mask_ratio, *, generator):
        B, N, D = x.shape
        keep = int(N * (1 - mask_ratio))
        order = torch.rand(B, N, generator=generator).argsort(dim=1)           # a random order per image
        ids_restore = torch.empty_like(order).scatter_(1, order, torch.arange(N).expand(B, N))
        kept = order[:, :keep]
        x_visible = torch.stack([x[b, kept[b]] for b in range(B)])
        return x_visible, ids_restore >= keep, ids_restore
''')

honest("dataclass_helper", "lab07_self_supervision", "ex4_clip_loss", '''
    from dataclasses import dataclass


    @dataclass
    class _Batch:
        images: torch.Tensor
        texts: torch.Tensor

        def unit(self):
            return _Batch(self.images / self.images.norm(dim=-1, keepdim=True),
                          self.texts / self.texts.norm(dim=-1, keepdim=True))


    def clip_loss(image_features, text_features, logit_scale):
        b = _Batch(image_features, text_features).unit()
        logits = torch.exp(logit_scale) * b.images @ b.texts.T
        labels = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
''')

honest("sort_for_threshold", "lab07_self_supervision", "ex5_top_k_filter", '''
    def top_k_filter(logits, k):
        k = min(k, logits.shape[-1])
        threshold = logits.sort(dim=-1, descending=True).values[..., k - 1:k]   # the k-th largest
        out = logits.clone()
        out[logits < threshold] = -math.inf
        return out
''')
