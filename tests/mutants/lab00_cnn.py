"""Plausible wrong answers to lab00_cnn; the lab harness proves each one loses points."""

from attnlab.course.harness import Mutant

edit = Mutant.edit

MUTANTS = [
    # ex1: the output size of a convolution
    edit("ex1_output_size", "true_division", "divides with / and returns a float such as 28.0 (or 55.25)",
         replace=[("// stride + 1", "/ stride + 1")]),
    edit("ex1_output_size", "padding_once", "adds the padding on one side only",
         replace=[("size + 2 * padding", "size + padding")]),
    edit("ex1_output_size", "ceil", "rounds up: counts a last window that hangs over the edge",
         replace=[("(size + 2 * padding - kernel) // stride + 1", "-(-(size + 2 * padding - kernel) // stride) + 1")]),
    edit("ex1_output_size", "no_plus_one", "counts the steps between windows, not the windows",
         replace=[("// stride + 1", "// stride")]),
    # ex2: convolution as unfold + matrix product
    edit("ex2_conv2d", "flipped_kernel", "flips the filter (the textbook convolution) although libraries do not",
         replace=[("weight.reshape(", "weight.flip(-1, -2).reshape(")]),
    edit("ex2_conv2d", "channels_last_flatten", "flattens the filter as (K, K, C) while unfold's rows are (C, K, K)",
         replace=[("weight.reshape(", "weight.permute(0, 2, 3, 1).reshape(")]),
    edit("ex2_conv2d", "padding_ignored", "forgets to pass the padding to unfold and the size formula",
         replace=[("(Hi + 2 * padding - K)", "(Hi - K)"), ("(Wi + 2 * padding - K)", "(Wi - K)"),
                  (", padding=padding)", ")")]),
    edit("ex2_conv2d", "stride_ignored", "forgets the stride: slides the window one pixel at a time",
         replace=[("(Hi + 2 * padding - K) // stride", "(Hi + 2 * padding - K)"),
                  ("(Wi + 2 * padding - K) // stride", "(Wi + 2 * padding - K)"),
                  ("stride=stride,", "stride=1,")]),
    # ex3: max pooling
    edit("ex3_max_pool2d", "stride_defaults_to_one", "uses stride 1 when no stride is given (overlapping windows)",
         replace=[("stride = kernel", "stride = 1")]),
    edit("ex3_max_pool2d", "channels_mixed", "splits unfold's rows as (K*K, C): windows of different channels mix",
         replace=[("reshape(B, C, kernel * kernel, Ho * Wo)", "reshape(B, kernel * kernel, C, Ho * Wo)"),
                  ("amax(dim=2)", "amax(dim=1)")]),
    edit("ex3_max_pool2d", "zero_padded", "pads with zeros (padding=kernel // 2), so a window of negatives gives 0",
         replace=[("(Hi - kernel)", "(Hi + 2 * (kernel // 2) - kernel)"),
                  ("(Wi - kernel)", "(Wi + 2 * (kernel // 2) - kernel)"),
                  ("stride=stride)", "stride=stride, padding=kernel // 2)")]),
    # ex4: average pooling
    edit("ex4_avg_pool2d", "sum_not_mean", "sums each window instead of averaging it",
         replace=[("windows.mean(dim=2)", "windows.sum(dim=2)")]),
    edit("ex4_avg_pool2d", "divides_by_stride", "divides the window sum by stride * stride instead of kernel * kernel",
         replace=[("windows.mean(dim=2)", "(windows.sum(dim=2) / (stride * stride))")]),
    edit("ex4_avg_pool2d", "stride_defaults_to_one", "uses stride 1 when no stride is given",
         replace=[("stride = kernel", "stride = 1")]),
    # ex5: the residual block
    edit("ex5_residual_block", "no_shortcut", "forgets the shortcut: a plain block ReLU(F(x))",
         replace=[("F.relu(out + x)", "F.relu(out)")]),
    edit("ex5_residual_block", "relu_then_add", "adds the shortcut after the last ReLU: ReLU(F(x)) + x",
         replace=[("F.relu(out + x)", "F.relu(out) + x")]),
    edit("ex5_residual_block", "add_before_bn2", "adds x before the second batch normalisation",
         replace=[("self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))",
                   "self.conv2(F.relu(self.bn1(self.conv1(x))))"),
                  ("F.relu(out + x)", "F.relu(self.bn2(out + x))")]),
    edit("ex5_residual_block", "no_inner_relu", "forgets the ReLU between the two convolutions",
         replace=[("self.conv2(F.relu(self.bn1(self.conv1(x))))", "self.conv2(self.bn1(self.conv1(x)))")]),
]
