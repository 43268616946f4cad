"""Plausible wrong answers to lab 2 (RNNs, seq2seq, Bahdanau attention); each must lose points."""

from attnlab.course.harness import Mutant

MUTANTS = [
    # ---------------------------------------------------------------- ex1: RNN cell
    Mutant("ex1_rnn_cell", "no_activation", "forgets the tanh: a linear recurrence", '''
def rnn_cell(x, h, U1, U2, b):
    return x @ U1.T + h @ U2.T + b
'''),
    Mutant("ex1_rnn_cell", "no_recurrence", "forgets the hidden-to-hidden edge U2 h_{i-1}", '''
def rnn_cell(x, h, U1, U2, b):
    return torch.tanh(x @ U1.T + b)
'''),
    Mutant("ex1_rnn_cell", "column_vectors", "multiplies by U1 and U2 untransposed (the column-vector habit)", '''
def rnn_cell(x, h, U1, U2, b):
    return torch.tanh(x @ U1 + h @ U2 + b)
'''),
    Mutant("ex1_rnn_cell", "sigmoid", "uses the logistic sigmoid instead of tanh", '''
def rnn_cell(x, h, U1, U2, b):
    return torch.sigmoid(x @ U1.T + h @ U2.T + b)
'''),
    # ---------------------------------------------------------------- ex2: LSTM cell
    Mutant("ex2_lstm_cell", "gate_order_ifog", "reads the slices in the order i, f, o, g of some papers", '''
def lstm_cell(x, h, c, W_ih, W_hh, b):
    i, f, o, g = (x @ W_ih.T + h @ W_hh.T + b).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
'''),
    Mutant("ex2_lstm_cell", "no_tanh_on_cell", "outputs h = o * c, forgetting the tanh of the memory", '''
def lstm_cell(x, h, c, W_ih, W_hh, b):
    i, f, g, o = (x @ W_ih.T + h @ W_hh.T + b).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * c, c
'''),
    Mutant("ex2_lstm_cell", "no_input_gate", "adds the candidate without the input gate: c = f c + g", '''
def lstm_cell(x, h, c, W_ih, W_hh, b):
    i, f, g, o = (x @ W_ih.T + h @ W_hh.T + b).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
'''),
    Mutant("ex2_lstm_cell", "forget_on_new", "applies the forget gate to the new candidate instead of the old memory", '''
def lstm_cell(x, h, c, W_ih, W_hh, b):
    i, f, g, o = (x @ W_ih.T + h @ W_hh.T + b).chunk(4, dim=-1)
    c = c + torch.sigmoid(f) * torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
'''),
    # ---------------------------------------------------------------- ex3: teacher forcing
    Mutant("ex3_teacher_forcing", "free_running", "feeds the decoder its own argmax instead of the true token", '''
def teacher_forcing_loss(step, state, tgt, pad_id=0):
    logits, y = [], tgt[:, 0]
    for i in range(tgt.size(1) - 1):
        out, state = step(y, state)
        logits.append(out)
        y = out.argmax(-1)
    logits = torch.stack(logits, dim=1)
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=pad_id)
'''),
    Mutant("ex3_teacher_forcing", "not_shifted", "scores each step against the token it was fed (no shift)", '''
def teacher_forcing_loss(step, state, tgt, pad_id=0):
    logits = []
    for i in range(tgt.size(1) - 1):
        out, state = step(tgt[:, i], state)
        logits.append(out)
    logits = torch.stack(logits, dim=1)
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, :-1].flatten(), ignore_index=pad_id)
'''),
    Mutant("ex3_teacher_forcing", "counts_padding", "averages over the padding positions too", '''
def teacher_forcing_loss(step, state, tgt, pad_id=0):
    logits = []
    for i in range(tgt.size(1) - 1):
        out, state = step(tgt[:, i], state)
        logits.append(out)
    logits = torch.stack(logits, dim=1)
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten())
'''),
    Mutant("ex3_teacher_forcing", "sum_per_sequence", "sums the token losses and divides by the batch size", '''
def teacher_forcing_loss(step, state, tgt, pad_id=0):
    logits = []
    for i in range(tgt.size(1) - 1):
        out, state = step(tgt[:, i], state)
        logits.append(out)
    logits = torch.stack(logits, dim=1)
    total = F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=pad_id, reduction="sum")
    return total / tgt.size(0)
'''),
    # ---------------------------------------------------------------- ex4: greedy decoding
    Mutant("ex4_greedy_decode", "never_stops", "ignores <EOS>: writes max_len tokens for every row", '''
def greedy_decode(step, state, batch_size, max_len, sos_id=1, eos_id=2, pad_id=0):
    y, out = torch.full((batch_size,), sos_id, dtype=torch.long), []
    for _ in range(max_len):
        logits, state = step(y, state)
        y = logits.argmax(dim=-1)
        out.append(y)
    return torch.stack(out, dim=1)
'''),
    Mutant("ex4_greedy_decode", "always_sos", "feeds <SOS> at every step instead of its own previous output", '''
def greedy_decode(step, state, batch_size, max_len, sos_id=1, eos_id=2, pad_id=0):
    start = torch.full((batch_size,), sos_id, dtype=torch.long)
    done = torch.zeros(batch_size, dtype=torch.bool)
    out = []
    for _ in range(max_len):
        logits, state = step(start, state)
        y = logits.argmax(dim=-1).masked_fill(done, pad_id)
        out.append(y)
        done = done | (y == eos_id)
        if bool(done.all()):
            break
    return torch.stack(out, dim=1)
'''),
    Mutant("ex4_greedy_decode", "stops_at_first_eos", "stops when any row (not every row) has finished", '''
def greedy_decode(step, state, batch_size, max_len, sos_id=1, eos_id=2, pad_id=0):
    y = torch.full((batch_size,), sos_id, dtype=torch.long)
    done = torch.zeros(batch_size, dtype=torch.bool)
    out = []
    for _ in range(max_len):
        logits, state = step(y, state)
        y = logits.argmax(dim=-1).masked_fill(done, pad_id)
        out.append(y)
        done = done | (y == eos_id)
        if bool(done.any()):
            break
    return torch.stack(out, dim=1)
'''),
    Mutant("ex4_greedy_decode", "no_padding_after_eos", "stops at the end but lets finished rows keep writing tokens", '''
def greedy_decode(step, state, batch_size, max_len, sos_id=1, eos_id=2, pad_id=0):
    y = torch.full((batch_size,), sos_id, dtype=torch.long)
    done = torch.zeros(batch_size, dtype=torch.bool)
    out = []
    for _ in range(max_len):
        logits, state = step(y, state)
        y = logits.argmax(dim=-1)
        out.append(y)
        done = done | (y == eos_id)
        if bool(done.all()):
            break
    return torch.stack(out, dim=1)
'''),
    # ---------------------------------------------------------------- ex5: Bahdanau attention
    Mutant("ex5_bahdanau", "ignores_mask", "forgets the mask: padding gets attention", '''
def bahdanau_attention(query, keys, values, mask, W_q, W_k, v):
    scores = torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T) @ v
    weights = torch.softmax(scores, dim=-1)
    return (weights[:, :, None] * values).sum(dim=1), weights
'''),
    Mutant("ex5_bahdanau", "inverted_mask", "reads True as 'may attend' (PyTorch's key_padding convention reversed)", '''
def bahdanau_attention(query, keys, values, mask, W_q, W_k, v):
    scores = torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T) @ v
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
    return (weights[:, :, None] * values).sum(dim=1), weights
'''),
    Mutant("ex5_bahdanau", "softmax_over_batch", "normalises over the batch (dim=0) instead of the source positions", '''
def bahdanau_attention(query, keys, values, mask, W_q, W_k, v):
    scores = torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T) @ v
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=0), nan=0.0)
    return (weights[:, :, None] * values).sum(dim=1), weights
'''),
    Mutant("ex5_bahdanau", "context_from_keys", "sums the keys instead of the values", '''
def bahdanau_attention(query, keys, values, mask, W_q, W_k, v):
    scores = torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T) @ v
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights[:, :, None] * keys).sum(dim=1), weights
'''),
    Mutant("ex5_bahdanau", "no_tanh", "drops the tanh of the additive score", '''
def bahdanau_attention(query, keys, values, mask, W_q, W_k, v):
    scores = ((query @ W_q.T)[:, None, :] + keys @ W_k.T) @ v
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights[:, :, None] * values).sum(dim=1), weights
'''),
]
