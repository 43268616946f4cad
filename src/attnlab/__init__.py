"""attnlab: the shared package of the course *Attention and Transformers for Computer Vision*.

Every implementation the book shows and the labs check lives here, one concept per module, in the
order of the book: ``cnn`` (ch. 0), ``saliency``, ``feature_selection``, ``nonlocal_net`` (ch. 1),
``rnn``, ``seq2seq`` (ch. 2), ``attention`` (ch. 3), ``data`` (generators), ``training`` (profiles,
seeding, the loop), ``plotting``, ``grading`` (what the labs' test cells call) and ``course``
(release, lab harness, grading command; instructors' tools).

Shape letters, used the same way in every docstring and comment:

=====  ===========================================================
B      batch size
T      sequence length (tokens); T_q / T_k for queries / keys
S      source sequence length (encoder side)
D      model width (d_model)
H      number of attention heads
Dh     width of one head (D // H), d_k in the paper
C      channels of an image or feature map
Hi,Wi  height and width of an image or feature map
K      kernel size
N      number of items (patches, boxes, features...)
V      vocabulary size
=====  ===========================================================

Importing the package does nothing else: no seeding, no plotting style, no downloads.
"""

__version__ = "0.1.0"
