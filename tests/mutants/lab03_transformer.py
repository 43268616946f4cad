"""Plausible wrong answers to lab 3 (part 1), each an edit of the solution cell; each must lose points."""

from attnlab.course.harness import Mutant

edit = Mutant.edit

MUTANTS = [
    # ex1: scaled dot-product attention
    edit("ex1_sdpa", "no_scale", "forgets to divide the scores by sqrt(d_k)",
         replace=[(" / math.sqrt(d_k)", "")]),
    edit("ex1_sdpa", "softmax_over_queries", "normalises over the queries (dim=-2) instead of the keys",
         replace=[("torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=-2)")]),
    edit("ex1_sdpa", "inverted_mask", "reads True as 'may attend' (PyTorch's convention, not the course's)",
         replace=[("scores.masked_fill(mask,", "scores.masked_fill(~mask,")]),
    edit("ex1_sdpa", "nan_on_fully_masked_row", "lets a fully masked row become NaN",
         replace=[("torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)", "torch.softmax(scores, dim=-1)")]),
    edit("ex1_sdpa", "calls_the_reference", "hands the work to PyTorch's fused attention",
         replace=[("return weights @ v, weights",
                   "return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else ~mask)"
                   ".nan_to_num(0.0), weights")]),
    # ex2: split and merge heads
    edit("ex2_heads", "view_without_transpose", "views (B, T, D) straight as (B, H, T, Dh)",
         replace=[("x.view(B, T, num_heads, D // num_heads).transpose(1, 2)", "x.view(B, num_heads, T, D // num_heads)")]),
    edit("ex2_heads", "interleaved_heads", "gives head i every H-th feature instead of a contiguous slice",
         replace=[("x.view(B, T, num_heads, D // num_heads).transpose(1, 2)",
                   "x.view(B, T, D // num_heads, num_heads).permute(0, 3, 1, 2)"),
                  ("x.transpose(1, 2).reshape(B, T, H * Dh)", "x.permute(0, 2, 3, 1).reshape(B, T, H * Dh)")]),
    edit("ex2_heads", "merge_without_transpose", "splits correctly but merges without moving the heads back",
         replace=[("x.transpose(1, 2).reshape(B, T, H * Dh)", "x.reshape(B, T, H * Dh)")]),
    # ex3: multi-head attention
    edit("ex3_mha", "no_output_projection", "forgets W_O",
         replace=[("out = self.out_proj(merge_heads(out))", "out = merge_heads(out)")]),
    edit("ex3_mha", "single_head", "attends once over the full width instead of per head",
         replace=[("out, weights = scaled_dot_product_attention(q, k, v, mask)\n"
                   "        out = self.out_proj(merge_heads(out))",
                   "out, weights = scaled_dot_product_attention(self.q_proj(query), self.k_proj(key), "
                   "self.v_proj(value), mask)\n"
                   "        out, weights = self.out_proj(out), weights.unsqueeze(1).expand(-1, self.num_heads, -1, -1)")]),
    edit("ex3_mha", "always_a_tuple", "returns (output, weights) even when the weights were not asked for",
         replace=[("return (out, weights) if need_weights else out", "return out, weights")]),
    edit("ex3_mha", "values_from_key_projection", "projects the values with W_K",
         replace=[("split_heads(self.v_proj(value)", "split_heads(self.k_proj(value)")]),
    # ex4: the causal mask
    edit("ex4_causal", "masks_the_diagonal", "also hides the current token (diagonal=0)",
         replace=[("diagonal=1)", "diagonal=0)")]),
    edit("ex4_causal", "hides_the_past", "masks below the diagonal (tril) instead of above",
         replace=[("torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)",
                   "torch.tril(torch.ones(t, t, dtype=torch.bool), diagonal=-1)")]),
    edit("ex4_causal", "float_mask", "returns a 0/1 float tensor instead of a bool mask",
         replace=[("torch.ones(t, t, dtype=torch.bool)", "torch.ones(t, t)")]),
]
