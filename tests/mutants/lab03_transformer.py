"""Plausible wrong answers to lab 3 (part 1); each must lose points."""

from attnlab.course.harness import Mutant

MUTANTS = [
    Mutant("ex1_sdpa", "no_scale", "forgets to divide the scores by sqrt(d_k)", '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
    return weights @ v, weights
'''),
    Mutant("ex1_sdpa", "softmax_over_queries", "normalises over the queries (dim=-2) instead of the keys", '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-2), nan=0.0)
    return weights @ v, weights
'''),
    Mutant("ex1_sdpa", "inverted_mask", "reads True as 'may attend' (PyTorch's convention, not the course's)", '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
    return weights @ v, weights
'''),
    Mutant("ex1_sdpa", "nan_on_fully_masked_row", "lets a fully masked row become NaN", '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
'''),
    Mutant("ex1_sdpa", "calls_the_reference", "hands the work to PyTorch's fused attention", '''
def scaled_dot_product_attention(q, k, v, mask=None):
    d = q.size(-1)
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d) if mask is None else (q @ k.transpose(-2, -1) / math.sqrt(d)).masked_fill(mask, float("-inf")), -1)
    w = torch.nan_to_num(w, nan=0.0)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else ~mask).nan_to_num(0.0), w
'''),
    Mutant("ex2_heads", "view_without_transpose", "views (B, T, D) straight as (B, H, T, Dh)", '''
def split_heads(x, num_heads):
    B, T, D = x.shape
    return x.view(B, num_heads, T, D // num_heads)


def merge_heads(x):
    B, H, T, Dh = x.shape
    return x.reshape(B, T, H * Dh)
'''),
    Mutant("ex2_heads", "interleaved_heads", "gives head i every H-th feature instead of a contiguous slice", '''
def split_heads(x, num_heads):
    B, T, D = x.shape
    return x.view(B, T, D // num_heads, num_heads).permute(0, 3, 1, 2)


def merge_heads(x):
    B, H, T, Dh = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, T, H * Dh)
'''),
    Mutant("ex2_heads", "merge_without_transpose", "splits correctly but merges without moving the heads back", '''
def split_heads(x, num_heads):
    B, T, D = x.shape
    return x.view(B, T, num_heads, D // num_heads).transpose(1, 2)


def merge_heads(x):
    B, H, T, Dh = x.shape
    return x.reshape(B, T, H * Dh)
'''),
    Mutant("ex3_mha", "no_output_projection", "forgets W_O", '''
class MultiHeadAttention(nn.Module):
    def __init__(self, *, dim, num_heads):
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query, key=None, value=None, *, mask=None, need_weights=True):
        key = query if key is None else key
        value = key if value is None else value
        q = split_heads(self.q_proj(query), self.num_heads)
        k = split_heads(self.k_proj(key), self.num_heads)
        v = split_heads(self.v_proj(value), self.num_heads)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return merge_heads(out), weights
'''),
    Mutant("ex3_mha", "single_head", "attends once over the full width instead of per head", '''
class MultiHeadAttention(nn.Module):
    def __init__(self, *, dim, num_heads):
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query, key=None, value=None, *, mask=None, need_weights=True):
        key = query if key is None else key
        value = key if value is None else value
        out, weights = scaled_dot_product_attention(self.q_proj(query), self.k_proj(key), self.v_proj(value), mask)
        return self.out_proj(out), weights.unsqueeze(1).expand(-1, self.num_heads, -1, -1)
'''),
    Mutant("ex3_mha", "values_from_key_projection", "projects the values with W_K", '''
class MultiHeadAttention(nn.Module):
    def __init__(self, *, dim, num_heads):
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query, key=None, value=None, *, mask=None, need_weights=True):
        key = query if key is None else key
        value = key if value is None else value
        q = split_heads(self.q_proj(query), self.num_heads)
        k = split_heads(self.k_proj(key), self.num_heads)
        v = split_heads(self.k_proj(value), self.num_heads)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(out)), weights
'''),
    Mutant("ex4_causal", "masks_the_diagonal", "also hides the current token (diagonal=0)", '''
def causal_mask(t):
    return torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=0)
'''),
    Mutant("ex4_causal", "hides_the_past", "masks below the diagonal (tril) instead of above", '''
def causal_mask(t):
    return torch.tril(torch.ones(t, t, dtype=torch.bool), diagonal=-1)
'''),
    Mutant("ex4_causal", "float_mask", "returns a 0/1 float tensor instead of a bool mask", '''
def causal_mask(t):
    return torch.triu(torch.ones(t, t), diagonal=1)
'''),
]
