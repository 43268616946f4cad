"""Plausible wrong answers to lab 2 (RNNs, seq2seq, Bahdanau attention); each must lose points."""

from attnlab.course.harness import Mutant

edit = Mutant.edit

MUTANTS = [
    # ex1: RNN cell
    edit("ex1_rnn_cell", "no_activation", "forgets the tanh: a linear recurrence",
         replace=[("return torch.tanh(x @ U1.T + h @ U2.T + b)", "return x @ U1.T + h @ U2.T + b")]),
    edit("ex1_rnn_cell", "no_recurrence", "forgets the hidden-to-hidden edge U2 h_{i-1}",
         replace=[(" + h @ U2.T", "")]),
    edit("ex1_rnn_cell", "column_vectors", "multiplies by U1 and U2 untransposed (the column-vector habit)",
         replace=[("x @ U1.T", "x @ U1"), ("h @ U2.T", "h @ U2")]),
    edit("ex1_rnn_cell", "sigmoid", "uses the logistic sigmoid instead of tanh",
         replace=[("torch.tanh(", "torch.sigmoid(")]),
    # ex2: LSTM cell
    edit("ex2_lstm_cell", "gate_order_ifog", "reads the slices in the order i, f, o, g of some papers",
         replace=[("i, f, g, o = gates", "i, f, o, g = gates")]),
    edit("ex2_lstm_cell", "no_tanh_on_cell", "outputs h = o * c, forgetting the tanh of the memory",
         replace=[("torch.sigmoid(o) * torch.tanh(c)", "torch.sigmoid(o) * c")]),
    edit("ex2_lstm_cell", "no_input_gate", "adds the candidate without the input gate: c = f c + g",
         replace=[("torch.sigmoid(i) * torch.tanh(g)", "torch.tanh(g)")]),
    edit("ex2_lstm_cell", "forget_on_new", "applies the forget gate to the new candidate instead of the old memory",
         replace=[("c = torch.sigmoid(f) * c + torch.sigmoid(i)", "c = c + torch.sigmoid(f) * torch.sigmoid(i)")]),
    # ex3: teacher forcing
    edit("ex3_teacher_forcing", "free_running", "feeds the decoder its own argmax instead of the true token",
         replace=[("step(tgt[:, i], state)", "step(tgt[:, 0] if i == 0 else out.argmax(-1), state)")]),
    edit("ex3_teacher_forcing", "not_shifted", "scores each step against the token it was fed (no shift)",
         replace=[("tgt[:, 1:].flatten()", "tgt[:, :-1].flatten()")]),
    edit("ex3_teacher_forcing", "counts_padding", "averages over the padding positions too",
         replace=[(", ignore_index=pad_id)", ")")]),
    edit("ex3_teacher_forcing", "sum_per_sequence", "sums the token losses and divides by the batch size",
         replace=[("ignore_index=pad_id)", 'ignore_index=pad_id, reduction="sum") / tgt.size(0)')]),
    # ex4: greedy decoding
    edit("ex4_greedy_decode", "never_stops", "ignores <EOS>: writes max_len tokens for every row",
         replace=[("        done = done | (y == eos_id)\n", "")]),
    edit("ex4_greedy_decode", "always_sos", "feeds <SOS> at every step instead of its own previous output",
         replace=[("y = torch.full(", "y = start = torch.full("), ("step(y, state)", "step(start, state)")]),
    edit("ex4_greedy_decode", "stops_at_first_eos", "stops when any row (not every row) has finished",
         replace=[("done.all()", "done.any()")]),
    edit("ex4_greedy_decode", "no_padding_after_eos", "stops at the end but lets finished rows keep writing tokens",
         replace=[(".masked_fill(done, pad_id)", "")]),
    # ex5: Bahdanau attention
    edit("ex5_bahdanau", "ignores_mask", "forgets the mask: padding gets attention",
         replace=[('    if mask is not None:\n        scores = scores.masked_fill(mask, float("-inf"))\n', "")]),
    edit("ex5_bahdanau", "inverted_mask", "reads True as 'may attend' (PyTorch's key_padding convention reversed)",
         replace=[("masked_fill(mask,", "masked_fill(~mask,")]),
    edit("ex5_bahdanau", "softmax_over_batch", "normalises over the batch (dim=0) instead of the source positions",
         replace=[("torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=0)")]),
    edit("ex5_bahdanau", "context_from_keys", "sums the keys instead of the values",
         replace=[("* values).sum", "* keys).sum")]),
    edit("ex5_bahdanau", "no_tanh", "drops the tanh of the additive score",
         replace=[("torch.tanh((", "((")]),
]
