"""A planted class for the similarity report (tests/test_similarity.py): lab 4's ``patchify`` and
``attention_rollout`` answered by 22 students in their own styles, and by 7 students who copied.

Each honest answer is a working implementation written its own way (loops, reshape, einops, unfold,
im2col, pixel_unshuffle, einsum, reduce, recursion...; own names and helpers). Each copy is planted
from a named source with a named disguise. Answers are cell bodies (the lab's signature and docstring
are kept, as a student's notebook keeps them) unless they start with ``CELL``, when they are the
whole cell (helpers above the function).
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from pathlib import Path

LAB = "lab04_vit"
EXERCISES = ("ex1_patchify", "ex5_rollout")

# ------------------------------------------------------------------------------------ honest answers
HONEST_PATCHIFY = {
    "ahn": """
    b, c, h, w = images.shape
    p = patch_size
    if h % p != 0 or w % p != 0:
        raise ValueError("image sides must be multiples of the patch size")
    grid_h, grid_w = h // p, w // p
    patches = images.view(b, c, grid_h, p, grid_w, p)
    patches = patches.permute(0, 2, 4, 3, 5, 1).contiguous()
    return patches.view(b, grid_h * grid_w, -1)
""",
    "baek": """
    if images.shape[-1] % patch_size or images.shape[-2] % patch_size:
        raise ValueError(f"patch size {patch_size} does not divide {tuple(images.shape[-2:])}")
    out = []
    for top in range(0, images.shape[2], patch_size):
        for left in range(0, images.shape[3], patch_size):
            tile = images[:, :, top:top + patch_size, left:left + patch_size]
            out.append(tile.permute(0, 2, 3, 1).flatten(1))
    return torch.stack(out, dim=1)
""",
    "cho": """
    n, ch, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError("bad patch size")
    # channels last first, so that each patch flattens as (P, P, C)
    x = images.permute(0, 2, 3, 1)
    x = x.reshape(n, height // patch_size, patch_size, width // patch_size, patch_size, ch)
    x = x.transpose(2, 3)
    return x.reshape(n, -1, patch_size * patch_size * ch)
""",
    "choi": """
    B, C, H, W = images.shape
    if H % patch_size != 0:
        raise ValueError("height not divisible")
    if W % patch_size != 0:
        raise ValueError("width not divisible")
    tiles = images.unfold(2, patch_size, patch_size).unfold(3, patch_size, patch_size)
    # tiles: B, C, rows, cols, P, P
    tiles = tiles.permute(0, 2, 3, 4, 5, 1)
    return tiles.reshape(B, tiles.shape[1] * tiles.shape[2], -1)
""",
    "chung": """
    batch = images.shape[0]
    channels = images.shape[1]
    if any(side % patch_size for side in images.shape[2:]):
        raise ValueError('image not divisible into patches')
    cols = F.unfold(images, kernel_size=patch_size, stride=patch_size)      # B, C*P*P, L
    cols = cols.transpose(1, 2)
    cols = cols.reshape(batch, cols.shape[1], channels, patch_size, patch_size)
    return cols.permute(0, 1, 3, 4, 2).flatten(2)
""",
    "han": """
    from einops import rearrange
    h, w = images.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ValueError("size mismatch")
    return rearrange(images, "n k (gy y) (gx x) -> n (gy gx) (y x k)", y=patch_size, x=patch_size)
""",
    "hwang": """
    assert images.dim() == 4
    B, C, H, W = images.shape
    rows, extra_r = divmod(H, patch_size)
    cols, extra_c = divmod(W, patch_size)
    if extra_r or extra_c:
        raise ValueError("leftover pixels")
    result = images.new_empty(B, rows * cols, patch_size * patch_size * C)
    for r in range(rows):
        for q in range(cols):
            block = images[..., r * patch_size:(r + 1) * patch_size, q * patch_size:(q + 1) * patch_size]
            result[:, r * cols + q] = block.movedim(1, -1).reshape(B, -1)
    return result
""",
    "jang": """
    P = patch_size
    _, _, H, W = images.shape
    if (H % P) + (W % P) > 0:
        raise ValueError(f"{H}x{W} cannot be cut into {P}x{P} patches")
    strips = torch.split(images, P, dim=2)
    pieces = [piece for strip in strips for piece in torch.split(strip, P, dim=3)]
    flat = [piece.permute(0, 2, 3, 1).reshape(piece.shape[0], -1) for piece in pieces]
    return torch.stack(flat, 1)
""",
    "jeon": """
    bs = images.size(0)
    c = images.size(1)
    if images.size(2) % patch_size or images.size(3) % patch_size:
        raise ValueError("patch_size must divide H and W")
    z = F.pixel_unshuffle(images, patch_size)            # (B, C*P*P, H/P, W/P)
    gh, gw = z.shape[-2:]
    z = z.reshape(bs, c, patch_size, patch_size, gh, gw)
    z = z.permute(0, 4, 5, 2, 3, 1)
    return z.reshape(bs, gh * gw, patch_size * patch_size * c)
""",
    "jung": """
    B, C, H, W = images.shape
    ps = patch_size
    if H % ps or W % ps:
        raise ValueError("H and W must be multiples of patch_size")
    grid = images.reshape(B, C, H // ps, ps, W // ps, ps)
    grid = torch.einsum("bchpwq->bhwpqc", grid)
    return grid.flatten(3).flatten(1, 2)
""",
    "kang": """CELL
def _check_divisible(size, p):
    if size % p:
        raise ValueError(f"{size} is not a multiple of {p}")


def patchify(images, patch_size):
    \"\"\"(B, C, H, W) -> (B, N, P * P * C): patches in row-major order, each flattened as (P, P, C).\"\"\"
    for size in images.shape[2:]:
        _check_divisible(size, patch_size)
    t = images.unflatten(2, (-1, patch_size)).unflatten(4, (-1, patch_size))   # B C Gh P Gw P
    t = t.movedim(1, -1)                                                       # B Gh P Gw P C
    t = t.transpose(2, 3)                                                      # B Gh Gw P P C
    return t.flatten(3).flatten(1, 2)
""",
    "kim": """
    import einops
    if images.shape[2] % patch_size != 0 or images.shape[3] % patch_size != 0:
        raise ValueError("cannot patchify")
    b = images.shape[0]
    blocks = einops.rearrange(images, "b c (i p) (j q) -> b i j p q c", p=patch_size, q=patch_size)
    return blocks.reshape(b, -1, blocks.shape[3] * blocks.shape[4] * blocks.shape[5])
""",
    "kwon": """
    size = patch_size
    height, width = images.shape[2], images.shape[3]
    if height % size or width % size:
        raise ValueError("patch size")
    patches = [images[:, :, i:i + size, j:j + size].permute(0, 2, 3, 1).reshape(len(images), -1)
               for i in range(0, height, size) for j in range(0, width, size)]
    return torch.stack(patches).transpose(0, 1)
""",
    "lee": """
    unfold = torch.nn.Unfold(kernel_size=patch_size, stride=patch_size)
    H, W = images.shape[-2], images.shape[-1]
    if H % patch_size or W % patch_size:
        raise ValueError("not divisible")
    C = images.shape[1]
    u = unfold(images)                                   # B x (C P P) x N
    u = u.view(u.shape[0], C, patch_size * patch_size, -1)
    return u.permute(0, 3, 2, 1).flatten(2)
""",
    "lim": """
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError(f"{patch_size=} must divide {H=} and {W=}")
    nh, nw = H // patch_size, W // patch_size
    x = images.reshape(B, C, nh, patch_size, nw, patch_size)
    x = x.transpose(1, 5)        # B, P, nh, P, nw, C
    x = x.transpose(1, 4)        # B, nw, nh, P, P, C
    x = x.transpose(1, 2)        # B, nh, nw, P, P, C
    return x.reshape(B, nh * nw, patch_size * patch_size * C)
""",
    "moon": """
    b = images.shape[0]
    rows = torch.chunk(images, images.shape[2] // patch_size, dim=2)
    if rows[0].shape[2] != patch_size or images.shape[3] % patch_size:
        raise ValueError("uneven patches")
    seq = []
    for row in rows:
        for cell in torch.chunk(row, row.shape[3] // patch_size, dim=3):
            seq.append(cell.permute(0, 2, 3, 1).reshape(b, 1, -1))
    return torch.cat(seq, dim=1)
""",
    "oh": """
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError("patch size must divide the image")
    # gather the pixel at offset (dy, dx) of every patch, then put the offsets last
    offsets = [images[:, :, dy::patch_size, dx::patch_size]
               for dy in range(patch_size) for dx in range(patch_size)]
    grid = torch.stack(offsets, dim=-1)                  # B, C, H/P, W/P, P*P
    grid = grid.permute(0, 2, 3, 4, 1)                   # B, H/P, W/P, P*P, C
    return grid.reshape(B, -1, patch_size * patch_size * C)
""",
    "park": """
    N, C, H, W = images.shape
    if H % patch_size != 0 or W % patch_size != 0:
        raise ValueError("H, W must be divisible by patch_size")
    hp = H // patch_size
    wp = W // patch_size
    x = images.permute(0, 2, 3, 1).reshape(N, hp, patch_size, W, C)
    x = x.reshape(N, hp, patch_size, wp, patch_size, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(N, hp * wp, -1)
""",
    "seo": """CELL
def tile_positions(height, width, step):
    \"\"\"Top-left corners of the tiles, row by row.\"\"\"
    return [(y, x) for y in range(0, height, step) for x in range(0, width, step)]


def patchify(images, patch_size):
    \"\"\"(B, C, H, W) -> (B, N, P * P * C): patches in row-major order, each flattened as (P, P, C).\"\"\"
    H, W = images.shape[-2:]
    if H % patch_size or W % patch_size:
        raise ValueError("patch size does not divide the image")
    channels_last = images.permute(0, 2, 3, 1)
    tiles = [channels_last[:, y:y + patch_size, x:x + patch_size, :].flatten(1)
             for (y, x) in tile_positions(H, W, patch_size)]
    return torch.stack(tiles, dim=1)
""",
    "shin": """
    B, C, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError("patch_size must divide both sides")
    nrow = H // P
    ncol = W // P
    out = torch.zeros(B, nrow * ncol, P * P * C, dtype=images.dtype, device=images.device)
    k = 0
    for i in range(nrow):
        for j in range(ncol):
            out[:, k, :] = images[:, :, i * P:i * P + P, j * P:j * P + P].permute(0, 2, 3, 1).reshape(B, P * P * C)
            k += 1
    return out
""",
    "song": """
    from einops.layers.torch import Rearrange
    if min(images.shape[-1], images.shape[-2]) % patch_size or max(images.shape[-1], images.shape[-2]) % patch_size:
        raise ValueError("no")
    layer = Rearrange("b c (h s1) (w s2) -> b (h w) (s1 s2 c)", s1=patch_size, s2=patch_size)
    return layer(images)
""",
    "yoon": """
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError("bad size")
    x = images.movedim(1, 3)                                   # B, H, W, C
    x = x.reshape(B, H // patch_size, patch_size, W, C)        # split rows
    x = x.reshape(B, H // patch_size, patch_size, W // patch_size, patch_size, C)
    x = x.swapaxes(2, 3)                                       # B, Hp, Wp, P, P, C
    return x.reshape(B, (H // patch_size) * (W // patch_size), patch_size ** 2 * C)
""",
}

HONEST_ROLLOUT = {
    "ahn": """
    B, _, T, _ = weights[0].shape
    result = torch.eye(T).repeat(B, 1, 1)
    for layer in weights:
        avg = layer.mean(dim=1)
        mixed = (1 - residual) * avg + residual * torch.eye(T)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        result = torch.bmm(mixed, result)
    return result
""",
    "baek": """
    from functools import reduce
    n = weights[0].shape[-1]
    ident = torch.eye(n, dtype=weights[0].dtype)
    mats = []
    for w in weights:
        m = residual * ident + (1.0 - residual) * w.mean(1)
        mats.append(m / m.sum(dim=-1, keepdim=True))
    return reduce(lambda acc, m: m @ acc, mats[1:], mats[0])
""",
    "cho": """
    stacked = torch.stack(list(weights))          # L, B, H, T, T
    per_layer = stacked.mean(dim=2)               # L, B, T, T
    T = per_layer.shape[-1]
    per_layer = per_layer * (1 - residual) + residual * torch.eye(T)
    per_layer = per_layer / per_layer.sum(dim=-1, keepdim=True)
    out = per_layer[0]
    for l in range(1, per_layer.shape[0]):
        out = per_layer[l] @ out
    return out
""",
    "choi": """CELL
def _layer_matrix(w, residual):
    heads_avg = w.mean(dim=1)
    eye = torch.eye(w.shape[-1], dtype=w.dtype, device=w.device)
    a = residual * eye + (1 - residual) * heads_avg
    return a / a.sum(dim=-1, keepdim=True)


def attention_rollout(weights, residual=0.5):
    \"\"\"weights: list of (B, H, T, T), first block first -> (B, T, T) = A_L ... A_1.\"\"\"
    if len(weights) == 1:
        return _layer_matrix(weights[0], residual)
    return _layer_matrix(weights[-1], residual) @ attention_rollout(weights[:-1], residual)
""",
    "chung": """
    rollout = None
    for w in weights:
        T = w.size(-1)
        A = w.mean(1) * (1 - residual) + torch.eye(T, dtype=w.dtype) * residual
        A /= A.sum(dim=2, keepdim=True)
        rollout = A if rollout is None else torch.einsum("bij,bjk->bik", A, rollout)
    return rollout
""",
    "han": """
    layers = [w.mean(dim=1) for w in weights]
    T = layers[0].shape[-1]
    I = torch.eye(T)
    normed = []
    for a in layers:
        a = torch.lerp(I.expand_as(a), a, 1 - residual)
        normed.append(a / a.sum(-1, keepdim=True))
    total = normed[-1]
    for a in reversed(normed[:-1]):
        total = total @ a
    return total
""",
    "hwang": """
    b, h, t, _ = weights[0].shape
    acc = torch.diag_embed(torch.ones(b, t, dtype=weights[0].dtype))
    for w in weights:
        step = w.sum(dim=1) / h                       # mean over heads
        step = residual * torch.eye(t) + (1 - residual) * step
        step = step / step.sum(dim=-1).unsqueeze(-1)
        acc = step.matmul(acc)
    return acc
""",
    "jang": """
    i = 0
    out = None
    while i < len(weights):
        att = weights[i].mean(1)
        att = att + residual / (1 - residual) * torch.eye(att.shape[-1])
        att = att / att.sum(-1, keepdim=True)
        out = att if out is None else att @ out
        i += 1
    return out
""",
    "jeon": """
    eye = None
    chain = []
    for w in weights:
        if eye is None:
            eye = torch.eye(w.shape[-1], dtype=w.dtype, device=w.device).unsqueeze(0)
        a = (1 - residual) * w.mean(dim=1) + residual * eye
        chain.append(F.normalize(a, p=1, dim=-1))
    result = chain[0]
    for a in chain[1:]:
        result = torch.matmul(a, result)
    return result
""",
    "jung": """
    T = weights[0].shape[-1]
    rows = []
    for b in range(weights[0].shape[0]):
        r = torch.eye(T)
        for w in weights:
            m = 0.5 * w[b].mean(0) if residual == 0.5 else (1 - residual) * w[b].mean(0)
            m = m + residual * torch.eye(T)
            r = (m / m.sum(1, keepdim=True)) @ r
        rows.append(r)
    return torch.stack(rows)
""",
    "kang": """
    mixed = [(1 - residual) * w.mean(1) + residual * torch.eye(w.shape[-1]) for w in weights]
    mixed = [m / m.sum(-1, keepdim=True) for m in mixed]
    R = mixed[0]
    for M in mixed[1:]:
        R = M @ R
    return R
""",
    "kim": """
    from functools import reduce
    import operator

    def prepare(w):
        eye = torch.eye(w.shape[-1]).expand_as(w[:, 0])
        m = torch.add(eye * residual, w.mean(dim=1), alpha=1 - residual)
        return m / m.sum(dim=-1, keepdim=True)

    return reduce(operator.matmul, [prepare(w) for w in reversed(weights)])
""",
    "kwon": """
    num_tokens = weights[0].shape[2]
    identity = torch.eye(num_tokens)
    joint = None
    for idx, attn in enumerate(weights):
        fused = residual * identity + (1 - residual) * attn.mean(axis=1)
        fused = fused / fused.sum(axis=-1, keepdims=True)
        if idx == 0:
            joint = fused
        else:
            joint = fused @ joint
    return joint
""",
    "lee": """
    t = weights[0].shape[-1]
    mats = torch.stack([w.mean(1) for w in weights], 0)      # L, B, T, T
    mats = (1 - residual) * mats + residual * torch.eye(t)[None, None]
    mats = mats / mats.sum(-1, keepdim=True)
    product = torch.eye(t).expand(mats.shape[1], t, t)
    for k in range(mats.shape[0]):
        product = torch.bmm(mats[k], product)
    return product
""",
    "lim": """
    B = weights[0].shape[0]
    T = weights[0].shape[-1]
    R = torch.eye(T, dtype=weights[0].dtype).unsqueeze(0).repeat(B, 1, 1)
    for layer_weights in weights:
        head_mean = torch.mean(layer_weights, dim=1)
        A = head_mean * (1 - residual)
        A = A + torch.eye(T) * residual
        A = A / torch.sum(A, dim=-1, keepdim=True)
        R = torch.matmul(A, R)
    return R
""",
    "moon": """CELL
def mix_with_identity(attn, share):
    n = attn.shape[-1]
    return share * torch.eye(n) + (1 - share) * attn


def row_normalise(m):
    return m / m.sum(-1, keepdim=True)


def attention_rollout(weights, residual=0.5):
    \"\"\"weights: list of (B, H, T, T), first block first -> (B, T, T) = A_L ... A_1.\"\"\"
    running = None
    for w in weights:
        step = row_normalise(mix_with_identity(w.mean(1), residual))
        running = step if running is None else step @ running
    return running
""",
    "oh": """
    out = torch.eye(weights[0].shape[-1]).unsqueeze(0)
    for W in weights:
        a = W.mean(dim=1)
        a.mul_(1 - residual)
        a.diagonal(dim1=-2, dim2=-1).add_(residual)
        a.div_(a.sum(dim=-1, keepdim=True))
        out = a @ out
    return out
""",
    "park": """
    L = len(weights)
    T = weights[0].shape[-1]
    as_list = []
    for l in range(L):
        a_l = weights[l].mean(dim=1)
        a_l = a_l + residual / (1.0 - residual) * torch.eye(T) if residual < 1 else torch.eye(T).expand_as(a_l)
        as_list.append(a_l / a_l.sum(-1, keepdim=True))
    roll = as_list[L - 1]
    for l in range(L - 2, -1, -1):
        roll = roll @ as_list[l]
    return roll
""",
    "seo": """
    device, dtype = weights[0].device, weights[0].dtype
    n = weights[0].size(-1)
    total = torch.eye(n, device=device, dtype=dtype)
    for attn in weights:
        a = torch.add((1 - residual) * attn.mean(dim=1), torch.eye(n, device=device, dtype=dtype), alpha=residual)
        a = a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        total = a @ total
    return total
""",
    "shin": """
    T = weights[0].shape[-1]
    averaged = [torch.mean(w, 1) for w in weights]
    with_id = [residual * torch.eye(T) + (1 - residual) * a for a in averaged]
    normed = [x / x.sum(dim=-1, keepdim=True) for x in with_id]
    result = normed.pop(0)
    while normed:
        result = normed.pop(0) @ result
    return result
""",
    "song": """
    prod = None
    for attn_map in weights:
        heads = attn_map.shape[1]
        mean = sum(attn_map[:, h] for h in range(heads)) / heads
        aug = mean * (1 - residual)
        aug = aug + residual * torch.eye(mean.shape[-1], dtype=mean.dtype)
        aug = aug / aug.sum(dim=-1, keepdim=True)
        prod = aug if prod is None else torch.bmm(aug, prod)
    return prod
""",
    "yoon": """
    T = weights[0].shape[-1]
    A = torch.stack(weights).mean(2)                                  # (L, B, T, T)
    A = torch.lerp(torch.eye(T).expand_as(A), A, 1 - residual)
    A = A / A.sum(-1, keepdim=True)
    out = A[-1]
    for i in range(len(weights) - 2, -1, -1):
        out = out @ A[i]
    return out
""",
}


# ------------------------------------------------------------------------------------ planted copies
def _package_body(name: str) -> str:
    """The body of the package's function ``name`` (attnlab.vit), docstring removed, as a student pastes it."""
    import attnlab.vit

    fn = ast.parse(textwrap.dedent(inspect.getsource(getattr(attnlab.vit, name)))).body[0]
    lines = inspect.getsource(getattr(attnlab.vit, name)).splitlines()
    return "\n" + "\n".join(lines[fn.body[1].lineno - 1:]) + "\n"


def _solution_body(exercise: str) -> str:
    """The solution cell's answer region (between the nbgrader markers), as a student would retype it."""
    from attnlab.course import notebook as N

    nb = N.read(N.solution_path(LAB, Path(__file__).resolve().parents[1]))
    (src,) = [c.source for c in nb.cells if N.grade_id(c) == exercise]
    lines = src.splitlines()
    begin = next(i for i, l in enumerate(lines) if "### BEGIN SOLUTION" in l)
    end = next(i for i, l in enumerate(lines) if "### END SOLUTION" in l)
    return "\n" + "\n".join(lines[begin + 1:end]) + "\n"


def planted_copies() -> dict[str, dict[str, tuple[str, str, str]]]:
    """copier -> exercise -> (answer, source, disguise); ``source`` is ``course`` or a student's name."""
    return {
        # 1. the package's function pasted verbatim
        "pkg_verbatim": {
            "ex1_patchify": ("\n    from einops import rearrange" + _package_body("patchify"), "course",
                             "verbatim from attnlab/vit.py"),
            "ex5_rollout": (_package_body("attention_rollout"), "course", "verbatim from attnlab/vit.py"),
        },
        # 2. the course's answer with every identifier renamed
        "renamer": {
            "ex1_patchify": ("""
    batch, chans, ht, wd = images.shape
    size = patch_size
    if ht % size or wd % size:
        raise ValueError(f"image size {ht} x {wd} is not a multiple of the patch size {size}")
    t = images.reshape(batch, chans, ht // size, size, wd // size, size)
    t = t.permute(0, 2, 4, 3, 5, 1)
    return t.reshape(batch, (ht // size) * (wd // size), size * size * chans)
""", "course", "identifiers renamed"),
            "ex5_rollout": ("""
    nb, _, ntok, _ = weights[0].shape
    ident = torch.eye(ntok, dtype=weights[0].dtype, device=weights[0].device)
    acc = ident.expand(nb, ntok, ntok)
    for layer in weights:
        m = (1 - residual) * layer.mean(dim=1) + residual * ident
        m = m / m.sum(dim=-1, keepdim=True)
        acc = m @ acc
    return acc
""", "course", "identifiers renamed"),
        },
        # 3. the package's function with independent statements reordered
        "reorderer": {
            "ex1_patchify": ("""
    P = patch_size
    B, C, H, W = images.shape
    if W % P or H % P:
        raise ValueError(f"image size {H} x {W} is not a multiple of the patch size {P}")
    x = images.reshape(B, C, H // P, P, W // P, P)             # (B, C, Hp, P, W, P)
    x = x.permute(0, 2, 4, 3, 5, 1)                            # (B, Hp, Wp, P, P, C)
    return x.reshape(B, (W // P) * (H // P), C * P * P)
""", "course", "statements and operands reordered"),
            "ex5_rollout": ("""
    B, _, T, _ = weights[0].shape
    eye = torch.eye(T, device=weights[0].device, dtype=weights[0].dtype)
    rollout = eye.expand(B, T, T)
    for w in weights:
        a = residual * eye + (1 - residual) * w.mean(dim=1)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout
    return rollout
""", "course", "statements and operands reordered"),
        },
        # 4. the course's answer reformatted, its comments rewritten
        "reformatter": {
            "ex1_patchify": ("""
    B, C, H, W = images.shape; P = patch_size
    if (H % P) or (W % P):
        raise ValueError(
            f"image size {H} x {W} is not a multiple of the patch size {P}"
        )
    # cut rows and columns into P-sized pieces
    x = images.reshape(
        B, C, H // P, P, W // P, P
    )
    # move channels to the end
    x = x.permute(
        0, 2, 4, 3, 5, 1
    )
    return x.reshape(
        B,
        (H // P) * (W // P),
        P * P * C,
    )
""", "course", "reformatted, comments changed"),
            "ex5_rollout": ("""
    # shapes
    B, _, T, _ = weights[0].shape
    eye = torch.eye(
        T, dtype=weights[0].dtype, device=weights[0].device
    )
    rollout = eye.expand(B, T, T)  # start from identity
    for w in weights:
        # average heads and add the skip connection
        a = ((1 - residual) * w.mean(dim=1)
             + residual * eye)
        a = a / a.sum(dim=-1, keepdim=True)  # rows sum to 1
        rollout = (a @ rollout)
    return rollout
""", "course", "reformatted, comments changed"),
        },
        # 5. everything at once: renamed, reordered, reformatted
        "disguiser": {
            "ex1_patchify": ("""
    n, k, rows, cols = images.shape
    q = patch_size
    if cols % q != 0 or rows % q != 0:
        raise ValueError(f"image size {rows} x {cols} is not a multiple of the patch size {q}")
    y = images.reshape(n, k, rows // q, q, cols // q, q)   # split
    y = y.permute(0, 2, 4, 3, 5, 1)                        # reorder
    return y.reshape(n, (rows // q) * (cols // q), q * q * k)
""", "course", "renamed, reordered, reformatted"),
            "ex5_rollout": ("""
    Bsz, _, Tok, _ = weights[0].shape
    I = torch.eye(Tok, device=weights[0].device, dtype=weights[0].dtype)
    out = I.expand(Bsz, Tok, Tok)
    for attn in weights:
        mixed = residual * I + (1 - residual) * attn.mean(dim=1)   # identity for the skip
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        out = mixed @ out
    return out
""", "course", "renamed, reordered, reformatted"),
        },
        # 6. one student copying another, with edits (renames, a comment, a statement moved)
        "friend_of_jeon": {
            "ex1_patchify": ("""
    ch = images.size(1)
    n = images.size(0)
    if images.size(3) % patch_size or images.size(2) % patch_size:
        raise ValueError("patch_size has to divide H and W")
    y = F.pixel_unshuffle(images, patch_size)     # C*P*P channels now
    rows, cols = y.shape[-2:]
    y = y.reshape(n, ch, patch_size, patch_size, rows, cols)
    y = y.permute(0, 4, 5, 2, 3, 1)
    return y.reshape(n, rows * cols, patch_size * patch_size * ch)
""", "jeon", "another student's answer, renamed and reordered"),
            "ex5_rollout": ("""
    I = None
    mats = []
    for attn in weights:
        if I is None:
            I = torch.eye(attn.shape[-1], device=attn.device, dtype=attn.dtype).unsqueeze(0)
        m = (1 - residual) * attn.mean(dim=1) + residual * I
        mats.append(F.normalize(m, p=1, dim=-1))   # rows sum to one
    out = mats[0]
    for m in mats[1:]:
        out = torch.matmul(m, out)
    return out
""", "jeon", "another student's answer, renamed"),
        },
        # 7. another student's answer with its helper inlined and names changed
        "friend_of_moon": {
            "ex1_patchify": ("""
    bsz = images.shape[0]
    strips = torch.chunk(images, images.shape[2] // patch_size, dim=2)
    if strips[0].shape[2] != patch_size or images.shape[3] % patch_size:
        raise ValueError("patches are uneven")
    tokens = []
    for strip in strips:
        for piece in torch.chunk(strip, strip.shape[3] // patch_size, dim=3):
            tokens.append(piece.permute(0, 2, 3, 1).reshape(bsz, 1, -1))
    return torch.cat(tokens, dim=1)
""", "moon", "another student's answer, renamed"),
            "ex5_rollout": ("""
    acc = None
    for attn in weights:
        n = attn.shape[-1]
        m = residual * torch.eye(n) + (1 - residual) * attn.mean(1)
        m = m / m.sum(-1, keepdim=True)
        acc = m if acc is None else m @ acc
    return acc
""", "moon", "another student's helpers inlined, renamed"),
        },
    }


# Two students who gave up after their first lines: honest, alike, and too short to mean anything.
PARTIAL = {
    "nam": {"ex1_patchify": """
    B, C, H, W = images.shape
    P = patch_size
    # TODO: reshape into patches
    raise NotImplementedError()
""", "ex5_rollout": """
    B, H, T, _ = weights[0].shape
    raise NotImplementedError()
"""},
    "ryu": {"ex1_patchify": """
    b, c, h, w = images.shape
    p = patch_size
    raise NotImplementedError()
""", "ex5_rollout": """
    b, heads, t, _ = weights[0].shape
    eye = torch.eye(t)
    raise NotImplementedError()
"""},
}


def honest() -> dict[str, dict[str, str]]:
    """student -> exercise -> answer body (or ``CELL`` + the whole cell)."""
    full = {s: {"ex1_patchify": HONEST_PATCHIFY[s], "ex5_rollout": HONEST_ROLLOUT[s]} for s in HONEST_PATCHIFY}
    return {**full, **PARTIAL}


def answer_cell(stub: str, answer: str) -> str:
    """The student's cell: the lab's stub with its ``# YOUR CODE HERE`` lines replaced by the answer."""
    if answer.startswith("CELL"):
        return answer[len("CELL"):].strip("\n")
    lines = stub.splitlines()
    at = next(i for i, l in enumerate(lines) if "# YOUR CODE HERE" in l)
    return "\n".join(lines[:at] + answer.strip("\n").splitlines() + lines[at + 2:])


def build_class(course: Path, submitted: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """Write every planted student's notebook as ``submitted/<student>/<lab>/<lab>.ipynb`` (the released
    lab with the answers filled in); return the planted copies as copier -> exercise -> (source, disguise)."""
    import nbformat

    from attnlab.course import notebook as N

    released = N.read(course / "labs" / LAB / f"{LAB}.ipynb")
    copies = planted_copies()
    answers = {**honest(), **{s: {ex: a for ex, (a, _, _) in c.items()} for s, c in copies.items()}}
    for student, mine in answers.items():
        nb = nbformat.from_dict(json.loads(json.dumps(released)))
        for cell in nb.cells:
            if N.grade_id(cell) in mine:
                cell.source = answer_cell(cell.source, mine[N.grade_id(cell)])
        folder = submitted / student / LAB
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / f"{LAB}.ipynb"))
    return {s: {ex: (src, how) for ex, (_, src, how) in c.items()} for s, c in copies.items()}
