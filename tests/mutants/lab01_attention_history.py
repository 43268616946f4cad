"""Plausible wrong answers to lab 1; each must lose points."""

from attnlab.course.harness import Mutant

MUTANTS = [
    # ------------------------------------------------------------------ ex1: forward selection step
    Mutant("ex1_forward_step", "scores_each_feature_alone",
           "tries every candidate on its own instead of added to the features already kept", '''
def forward_selection_step(x_train, y_train, x_val, y_val, selection):
    candidates = (selection == 0).nonzero().flatten()
    trials = torch.zeros(candidates.numel(), selection.numel())
    trials[torch.arange(candidates.numel()), candidates] = 1.0
    acc = nearest_centroid_accuracy(x_train, y_train, x_val, y_val, trials)
    best = int(acc.argmax())
    new = selection.float().clone()
    new[candidates[best]] = 1.0
    return new, float(acc[best])
'''),
    Mutant("ex1_forward_step", "training_accuracy",
           "chooses by accuracy on the training set (the validation set is never used)", '''
def forward_selection_step(x_train, y_train, x_val, y_val, selection):
    candidates = (selection == 0).nonzero().flatten()
    trials = selection.float().repeat(candidates.numel(), 1)
    trials[torch.arange(candidates.numel()), candidates] = 1.0
    acc = nearest_centroid_accuracy(x_train, y_train, x_train, y_train, trials)
    best = int(acc.argmax())
    return trials[best], float(acc[best])
'''),
    Mutant("ex1_forward_step", "last_of_ties",
           "keeps the last of equally good features (a loop with >=) instead of the lowest index", '''
def forward_selection_step(x_train, y_train, x_val, y_val, selection):
    best, best_acc = None, -1.0
    for j in range(selection.numel()):
        if selection[j] == 1:
            continue
        trial = selection.float().clone()
        trial[j] = 1.0
        acc = float(nearest_centroid_accuracy(x_train, y_train, x_val, y_val, trial))
        if acc >= best_acc:
            best, best_acc = trial, acc
    return best, best_acc
'''),
    # ------------------------------------------------------------------ ex2: centre-surround
    Mutant("ex2_center_surround", "align_corners_true",
           "upsamples with align_corners=True (corner pixels aligned, not pixel centres)", '''
def center_surround(center, surround):
    up = F.interpolate(surround[None, None], size=tuple(center.shape), mode="bilinear", align_corners=True)[0, 0]
    return (center - up).abs()
'''),
    Mutant("ex2_center_surround", "nearest_upsampling",
           "upsamples by repeating pixels (nearest neighbour) instead of interpolating", '''
def center_surround(center, surround):
    up = F.interpolate(surround[None, None], size=tuple(center.shape), mode="nearest")[0, 0]
    return (center - up).abs()
'''),
    Mutant("ex2_center_surround", "signed_difference",
           "forgets the absolute value: places darker than their surround come out negative", '''
def center_surround(center, surround):
    up = F.interpolate(surround[None, None], size=tuple(center.shape), mode="bilinear", align_corners=False)[0, 0]
    return center - up
'''),
    Mutant("ex2_center_surround", "scale_factor",
           "upsamples by the ratio of sizes (scale_factor) and crops, wrong when sizes were rounded up", '''
def center_surround(center, surround):
    factor = center.shape[0] // surround.shape[0]
    up = F.interpolate(surround[None, None], scale_factor=factor, mode="bilinear", align_corners=False)[0, 0]
    up = F.pad(up, (0, max(0, center.shape[1] - up.shape[1]), 0, max(0, center.shape[0] - up.shape[0])), mode="replicate")
    return (center - up[:center.shape[0], :center.shape[1]]).abs()
'''),
    # ------------------------------------------------------------------ ex3: N(.)
    Mutant("ex3_normalize_map", "keeps_global_max_in_mean",
           "averages all local maxima, the global maximum included", '''
def normalize_map(m):
    top = m.max()
    if top <= 0:
        return torch.zeros_like(m)
    m = m / top
    m_bar = m[local_maxima(m)].mean()
    return m * (1.0 - m_bar) ** 2
'''),
    Mutant("ex3_normalize_map", "mean_of_whole_map",
           "uses the mean of every pixel instead of the mean of the local maxima", '''
def normalize_map(m):
    top = m.max()
    if top <= 0:
        return torch.zeros_like(m)
    m = m / top
    return m * (1.0 - m.mean()) ** 2
'''),
    Mutant("ex3_normalize_map", "not_squared",
           "multiplies by (1 - m_bar) instead of (1 - m_bar)^2", '''
def normalize_map(m):
    top = m.max()
    if top <= 0:
        return torch.zeros_like(m)
    m = m / top
    peaks = m[local_maxima(m)]
    others = peaks.numel() - 1
    m_bar = (peaks.sum() - 1.0) / others if others > 0 else 0.0
    return m * (1.0 - m_bar)
'''),
    Mutant("ex3_normalize_map", "no_rescale",
           "skips the rescaling to [0, 1] (and divides m_bar by the maximum afterwards)", '''
def normalize_map(m):
    top = m.max()
    if top <= 0:
        return torch.zeros_like(m)
    peaks = m[local_maxima(m)]
    others = peaks.numel() - 1
    m_bar = (peaks.sum() - top) / others / top if others > 0 else 0.0
    return m * (1.0 - m_bar) ** 2
'''),
    # ------------------------------------------------------------------ ex4: non-local operation
    Mutant("ex4_nonlocal", "softmax_over_queries",
           "normalises each column (over the queries, dim=1) instead of each row", '''
def nonlocal_attention(theta, phi, g):
    B, _, H, W = theta.shape
    q = theta.flatten(2).transpose(1, 2)
    k = phi.flatten(2).transpose(1, 2)
    v = g.flatten(2).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(1, 2), dim=1)
    y = (weights @ v).transpose(1, 2).reshape(B, -1, H, W)
    return y, weights
'''),
    Mutant("ex4_nonlocal", "transformer_scale",
           "divides the scores by sqrt(C') as the Transformer does; the non-local block does not", '''
def nonlocal_attention(theta, phi, g):
    B, C, H, W = theta.shape
    q = theta.flatten(2).transpose(1, 2)
    k = phi.flatten(2).transpose(1, 2)
    v = g.flatten(2).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(C), dim=-1)
    y = (weights @ v).transpose(1, 2).reshape(B, -1, H, W)
    return y, weights
'''),
    Mutant("ex4_nonlocal", "view_without_transpose",
           "reshapes (B, C', Hi, Wi) straight to (B, N, C'), mixing channels and positions", '''
def nonlocal_attention(theta, phi, g):
    B, C, H, W = theta.shape
    q = theta.reshape(B, H * W, C)
    k = phi.reshape(B, H * W, C)
    v = g.reshape(B, H * W, -1)
    weights = torch.softmax(q @ k.transpose(1, 2), dim=-1)
    y = (weights @ v).reshape(B, -1, H, W)
    return y, weights
'''),
]
