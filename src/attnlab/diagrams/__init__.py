"""Architecture diagrams of the book, drawn by code so they build offline and match the package.

``core`` holds the primitives (boxes, arrows, groups, grids); one module per chapter holds its
diagrams (``cnn``, ``saliency``, ``rnn``, ``attention``, ...). Each diagram is a function that
returns a matplotlib figure, and takes the sizes of the model it shows as arguments.
"""

from .core import PALETTE, Box, arrow, box, canvas, grid, group, label, tensor_bar

__all__ = ["PALETTE", "Box", "canvas", "box", "arrow", "group", "label", "grid", "tensor_bar"]
