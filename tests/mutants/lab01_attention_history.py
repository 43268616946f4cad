"""Plausible wrong answers to lab 1; each must lose points."""

from attnlab.course.harness import Mutant

edit = Mutant.edit

MUTANTS = [
    # ex1: forward selection step
    edit("ex1_forward_step", "scores_each_feature_alone",
         "tries every candidate on its own instead of added to the features already kept",
         replace=[("trials = selection.float().repeat(candidates.numel(), 1)",
                   "trials = torch.zeros(candidates.numel(), selection.numel())"),
                  ("return trials[best],", "return selection.float() + trials[best],")]),
    edit("ex1_forward_step", "training_accuracy",
         "chooses by accuracy on the training set (the validation set is never used)",
         replace=[("x_val, y_val, trials)", "x_train, y_train, trials)")]),
    edit("ex1_forward_step", "last_of_ties",
         "keeps the last of equally good features (a loop with >=) instead of the lowest index",
         replace=[("best = int(acc.argmax())                                         # first of equal maxima",
                   "best = 0\n"
                   "    for j in range(acc.numel()):\n"
                   "        if acc[j] >= acc[best]:\n"
                   "            best = j")]),
    # ex2: centre-surround difference
    edit("ex2_center_surround", "align_corners_true",
         "upsamples with align_corners=True (corner pixels aligned, not pixel centres)",
         replace=[("align_corners=False", "align_corners=True")]),
    edit("ex2_center_surround", "nearest_upsampling",
         "upsamples by repeating pixels (nearest neighbour) instead of interpolating",
         replace=[('mode="bilinear",\n                       align_corners=False)', 'mode="nearest")')]),
    edit("ex2_center_surround", "signed_difference",
         "forgets the absolute value: places darker than their surround come out negative",
         replace=[("return (center - up).abs()", "return center - up")]),
    edit("ex2_center_surround", "scale_factor",
         "upsamples by the ratio of sizes (scale_factor) and crops, wrong when sizes were rounded up",
         replace=[("size=tuple(center.shape)", "scale_factor=center.shape[0] // surround.shape[0]"),
                  ("return (center - up).abs()",
                   "H, W = center.shape\n"
                   "    up = F.pad(up[None], (0, max(0, W - up.shape[1]), 0, max(0, H - up.shape[0])), "
                   "mode=\"replicate\")[0]\n"
                   "    return (center - up[:H, :W]).abs()")]),
    # ex3: Itti's normalisation N(.)
    edit("ex3_normalize_map", "keeps_global_max_in_mean",
         "averages all local maxima, the global maximum included",
         replace=[("m_bar = (peaks.sum() - 1.0) / others if others > 0 else 0.0", "m_bar = peaks.mean()")]),
    edit("ex3_normalize_map", "mean_of_whole_map",
         "uses the mean of every pixel instead of the mean of the local maxima",
         replace=[("m_bar = (peaks.sum() - 1.0) / others if others > 0 else 0.0", "m_bar = m.mean()")]),
    edit("ex3_normalize_map", "not_squared",
         "multiplies by (1 - m_bar) instead of (1 - m_bar)^2",
         replace=[("(1.0 - m_bar) ** 2", "(1.0 - m_bar)")]),
    edit("ex3_normalize_map", "no_rescale",
         "skips the rescaling to [0, 1] (and divides m_bar by the maximum afterwards)",
         replace=[("    m = m / top\n", ""),
                  ("(peaks.sum() - 1.0) / others", "(peaks.sum() - top) / others / top")]),
    # ex4: the non-local operation
    edit("ex4_nonlocal", "softmax_over_queries",
         "normalises each column (over the queries, dim=1) instead of each row",
         replace=[("dim=-1)", "dim=1)")]),
    edit("ex4_nonlocal", "transformer_scale",
         "divides the scores by sqrt(C') as the Transformer does; the non-local block does not",
         replace=[("q @ k.transpose(1, 2),", "q @ k.transpose(1, 2) / math.sqrt(q.size(-1)),")]),
    edit("ex4_nonlocal", "view_without_transpose",
         "reshapes (B, C', Hi, Wi) straight to (B, N, C'), mixing channels and positions",
         replace=[("theta.flatten(2).transpose(1, 2)", "theta.reshape(B, H * W, -1)"),
                  ("phi.flatten(2).transpose(1, 2)", "phi.reshape(B, H * W, -1)"),
                  ("g.flatten(2).transpose(1, 2)", "g.reshape(B, H * W, -1)"),
                  ("(weights @ v).transpose(1, 2).reshape", "(weights @ v).reshape")]),
]
