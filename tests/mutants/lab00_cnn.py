"""Plausible wrong answers to lab00_cnn; the lab harness proves each one loses points."""

from attnlab.course.harness import Mutant

MUTANTS = [
    Mutant(
        exercise='ex1_output_size',
        name='true_division',
        why='divides with / and returns a float such as 28.0 (or 55.25)',
        source='''
def conv_output_size(size, kernel, stride=1, padding=0):
    """Number of positions of a kernel-wide window along an axis of `size` pixels (an int)."""
    return (size + 2 * padding - kernel) / stride + 1
''',
    ),
    Mutant(
        exercise='ex1_output_size',
        name='padding_once',
        why='adds the padding on one side only',
        source='''
def conv_output_size(size, kernel, stride=1, padding=0):
    """Number of positions of a kernel-wide window along an axis of `size` pixels (an int)."""
    return (size + padding - kernel) // stride + 1
''',
    ),
    Mutant(
        exercise='ex1_output_size',
        name='ceil',
        why='rounds up: counts a last window that hangs over the edge',
        source='''
def conv_output_size(size, kernel, stride=1, padding=0):
    """Number of positions of a kernel-wide window along an axis of `size` pixels (an int)."""
    return -(-(size + 2 * padding - kernel) // stride) + 1
''',
    ),
    Mutant(
        exercise='ex1_output_size',
        name='no_plus_one',
        why='counts the steps between windows, not the windows',
        source='''
def conv_output_size(size, kernel, stride=1, padding=0):
    """Number of positions of a kernel-wide window along an axis of `size` pixels (an int)."""
    return (size + 2 * padding - kernel) // stride
''',
    ),
    Mutant(
        exercise='ex2_conv2d',
        name='flipped_kernel',
        why='flips the filter (the textbook convolution) although libraries do not',
        source='''
def conv2d(x, weight, bias=None, *, stride=1, padding=0):
    """(B, C, Hi, Wi) images, (C_out, C, K, K) filters, optional (C_out,) bias -> (B, C_out, Ho, Wo)."""
    B, C, Hi, Wi = x.shape
    C_out, _, K, _ = weight.shape
    Ho = (Hi + 2 * padding - K) // stride + 1
    Wo = (Wi + 2 * padding - K) // stride + 1
    windows = F.unfold(x, kernel_size=K, stride=stride, padding=padding)  # (B, C*K*K, Ho*Wo)
    out = weight.flip(-1, -2).reshape(C_out, C * K * K) @ windows  # (B, C_out, Ho*Wo)
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(B, C_out, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex2_conv2d',
        name='channels_last_flatten',
        why="flattens the filter as (K, K, C) while unfold's rows are (C, K, K)",
        source='''
def conv2d(x, weight, bias=None, *, stride=1, padding=0):
    """(B, C, Hi, Wi) images, (C_out, C, K, K) filters, optional (C_out,) bias -> (B, C_out, Ho, Wo)."""
    B, C, Hi, Wi = x.shape
    C_out, _, K, _ = weight.shape
    Ho = (Hi + 2 * padding - K) // stride + 1
    Wo = (Wi + 2 * padding - K) // stride + 1
    windows = F.unfold(x, kernel_size=K, stride=stride, padding=padding)  # (B, C*K*K, Ho*Wo)
    out = weight.permute(0, 2, 3, 1).reshape(C_out, C * K * K) @ windows  # (B, C_out, Ho*Wo)
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(B, C_out, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex2_conv2d',
        name='padding_ignored',
        why='forgets to pass the padding to unfold and the size formula',
        source='''
def conv2d(x, weight, bias=None, *, stride=1, padding=0):
    """(B, C, Hi, Wi) images, (C_out, C, K, K) filters, optional (C_out,) bias -> (B, C_out, Ho, Wo)."""
    B, C, Hi, Wi = x.shape
    C_out, _, K, _ = weight.shape
    Ho = (Hi + 0 - K) // stride + 1
    Wo = (Wi + 0 - K) // stride + 1
    windows = F.unfold(x, kernel_size=K, stride=stride)  # (B, C*K*K, Ho*Wo)
    out = weight.reshape(C_out, C * K * K) @ windows  # (B, C_out, Ho*Wo)
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(B, C_out, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex2_conv2d',
        name='stride_ignored',
        why='forgets the stride: slides the window one pixel at a time',
        source='''
def conv2d(x, weight, bias=None, *, stride=1, padding=0):
    """(B, C, Hi, Wi) images, (C_out, C, K, K) filters, optional (C_out,) bias -> (B, C_out, Ho, Wo)."""
    B, C, Hi, Wi = x.shape
    C_out, _, K, _ = weight.shape
    Ho = (Hi + 2 * padding - K) + 1
    Wo = (Wi + 2 * padding - K) + 1
    windows = F.unfold(x, kernel_size=K, stride=1, padding=padding)  # (B, C*K*K, Ho*Wo)
    out = weight.reshape(C_out, C * K * K) @ windows  # (B, C_out, Ho*Wo)
    if bias is not None:
        out = out + bias[:, None]
    return out.reshape(B, C_out, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex3_max_pool2d',
        name='stride_defaults_to_one',
        why='uses stride 1 when no stride is given (overlapping windows)',
        source='''
def max_pool2d(x, kernel, stride=None):
    """(B, C, Hi, Wi) -> (B, C, Ho, Wo): the maximum of each kernel x kernel window; stride defaults to kernel."""
    if stride is None:
        stride = 1
    B, C, Hi, Wi = x.shape
    Ho = (Hi - kernel) // stride + 1
    Wo = (Wi - kernel) // stride + 1
    windows = F.unfold(x, kernel_size=kernel, stride=stride)  # (B, C*K*K, Ho*Wo)
    windows = windows.reshape(B, C, kernel * kernel, Ho * Wo)  # (B, C, K*K, Ho*Wo)
    return windows.amax(dim=2).reshape(B, C, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex3_max_pool2d',
        name='channels_mixed',
        why="splits unfold's rows as (K*K, C): windows of different channels mix",
        source='''
def max_pool2d(x, kernel, stride=None):
    """(B, C, Hi, Wi) -> (B, C, Ho, Wo): the maximum of each kernel x kernel window; stride defaults to kernel."""
    if stride is None:
        stride = kernel
    B, C, Hi, Wi = x.shape
    Ho = (Hi - kernel) // stride + 1
    Wo = (Wi - kernel) // stride + 1
    windows = F.unfold(x, kernel_size=kernel, stride=stride)  # (B, C*K*K, Ho*Wo)
    windows = windows.reshape(B, kernel * kernel, C, Ho * Wo)  # (B, C, K*K, Ho*Wo)
    return windows.amax(dim=1).reshape(B, C, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex3_max_pool2d',
        name='zero_padded',
        why='pads with zeros (padding=kernel // 2), so a window of negatives gives 0',
        source='''
def max_pool2d(x, kernel, stride=None):
    """(B, C, Hi, Wi) -> (B, C, Ho, Wo): the maximum of each kernel x kernel window; stride defaults to kernel."""
    if stride is None:
        stride = kernel
    B, C, Hi, Wi = x.shape
    Ho = (Hi + 2 * (kernel // 2) - kernel) // stride + 1
    Wo = (Wi + 2 * (kernel // 2) - kernel) // stride + 1
    windows = F.unfold(x, kernel_size=kernel, stride=stride, padding=kernel // 2)  # (B, C*K*K, Ho*Wo)
    windows = windows.reshape(B, C, kernel * kernel, Ho * Wo)  # (B, C, K*K, Ho*Wo)
    return windows.amax(dim=2).reshape(B, C, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex4_avg_pool2d',
        name='sum_not_mean',
        why='sums each window instead of averaging it',
        source='''
def avg_pool2d(x, kernel, stride=None):
    """(B, C, Hi, Wi) -> (B, C, Ho, Wo): the mean of each kernel x kernel window; stride defaults to kernel."""
    if stride is None:
        stride = kernel
    B, C, Hi, Wi = x.shape
    Ho = (Hi - kernel) // stride + 1
    Wo = (Wi - kernel) // stride + 1
    windows = F.unfold(x, kernel_size=kernel, stride=stride)  # (B, C*K*K, Ho*Wo)
    windows = windows.reshape(B, C, kernel * kernel, Ho * Wo)  # (B, C, K*K, Ho*Wo)
    return windows.sum(dim=2).reshape(B, C, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex4_avg_pool2d',
        name='divides_by_stride',
        why='divides the window sum by stride * stride instead of kernel * kernel',
        source='''
def avg_pool2d(x, kernel, stride=None):
    """(B, C, Hi, Wi) -> (B, C, Ho, Wo): the mean of each kernel x kernel window; stride defaults to kernel."""
    if stride is None:
        stride = kernel
    B, C, Hi, Wi = x.shape
    Ho = (Hi - kernel) // stride + 1
    Wo = (Wi - kernel) // stride + 1
    windows = F.unfold(x, kernel_size=kernel, stride=stride)  # (B, C*K*K, Ho*Wo)
    windows = windows.reshape(B, C, kernel * kernel, Ho * Wo)  # (B, C, K*K, Ho*Wo)
    return (windows.sum(dim=2) / (stride * stride)).reshape(B, C, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex4_avg_pool2d',
        name='stride_defaults_to_one',
        why='uses stride 1 when no stride is given',
        source='''
def avg_pool2d(x, kernel, stride=None):
    """(B, C, Hi, Wi) -> (B, C, Ho, Wo): the mean of each kernel x kernel window; stride defaults to kernel."""
    if stride is None:
        stride = 1
    B, C, Hi, Wi = x.shape
    Ho = (Hi - kernel) // stride + 1
    Wo = (Wi - kernel) // stride + 1
    windows = F.unfold(x, kernel_size=kernel, stride=stride)  # (B, C*K*K, Ho*Wo)
    windows = windows.reshape(B, C, kernel * kernel, Ho * Wo)  # (B, C, K*K, Ho*Wo)
    return windows.mean(dim=2).reshape(B, C, Ho, Wo)
''',
    ),
    Mutant(
        exercise='ex5_residual_block',
        name='no_shortcut',
        why='forgets the shortcut: a plain block ReLU(F(x))',
        source='''
class ResidualBlock(nn.Module):
    """ResNet's basic block with an identity shortcut: y = ReLU(F(x) + x)."""

    def __init__(self, *, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        """x: (B, C, Hi, Wi) -> (B, C, Hi, Wi)."""
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))  # F(x): (B, C, Hi, Wi)
        return F.relu(out)  # the identity shortcut
''',
    ),
    Mutant(
        exercise='ex5_residual_block',
        name='relu_then_add',
        why='adds the shortcut after the last ReLU: ReLU(F(x)) + x',
        source='''
class ResidualBlock(nn.Module):
    """ResNet's basic block with an identity shortcut: y = ReLU(F(x) + x)."""

    def __init__(self, *, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        """x: (B, C, Hi, Wi) -> (B, C, Hi, Wi)."""
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))  # F(x): (B, C, Hi, Wi)
        return F.relu(out) + x  # the identity shortcut
''',
    ),
    Mutant(
        exercise='ex5_residual_block',
        name='add_before_bn2',
        why='adds x before the second batch normalisation',
        source='''
class ResidualBlock(nn.Module):
    """ResNet's basic block with an identity shortcut: y = ReLU(F(x) + x)."""

    def __init__(self, *, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        """x: (B, C, Hi, Wi) -> (B, C, Hi, Wi)."""
        out = self.conv2(F.relu(self.bn1(self.conv1(x))))
        return F.relu(self.bn2(out + x))
''',
    ),
    Mutant(
        exercise='ex5_residual_block',
        name='no_inner_relu',
        why='forgets the ReLU between the two convolutions',
        source='''
class ResidualBlock(nn.Module):
    """ResNet's basic block with an identity shortcut: y = ReLU(F(x) + x)."""

    def __init__(self, *, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        """x: (B, C, Hi, Wi) -> (B, C, Hi, Wi)."""
        out = self.bn2(self.conv2(self.bn1(self.conv1(x))))  # F(x): (B, C, Hi, Wi)
        return F.relu(out + x)  # the identity shortcut
''',
    ),
]
