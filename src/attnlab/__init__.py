"""attnlab: the shared package of the course *Attention and Transformers for Computer Vision*.

Every implementation the book shows and the labs check lives here, one concept per module, in the
order of the book: ``cnn`` (ch. 0), ``saliency``, ``feature_selection``, ``nonlocal_net`` (ch. 1),
``rnn``, ``seq2seq`` (ch. 2), ``attention``, ``tiny``, ``transformer`` and ``convert`` (its weights
copied into ``torch.nn``'s layers) (ch. 3), then one module per model of the later chapters. Shared services beside them: ``measure`` (parameters, FLOPs, memory, time),
``training`` (profiles, seeding, the loop), ``zoo`` (trained models shared between pages), ``plotting`` (figures), ``diagrams`` (architecture
drawings), ``grading`` (what the labs' test cells call), ``data`` (every generator, and the special
token ids in ``data.tokens``) and ``course`` (release, lab harness, grading command; instructors'
tools). ``CONTRIBUTING.md`` has the full layout.

Shape letters, used the same way in every docstring and comment (one meaning each):

========  ===================================================================================
B         batch size
T         sequence length (tokens); T_q / T_k for queries / keys when they differ
S         source sequence length (the encoder's side of an encoder-decoder)
L         length of a generated (decoded) sequence
D         model width (d_model); D_in / D_out: input / output width of a layer
D_q, D_k  widths of queries / keys where they differ from D; D_v the width of values
E         width of a token embedding where it differs from D
A         width of Bahdanau's additive scoring layer
F         hidden width of a position-wise feed-forward layer (4 D in the paper)
H         number of attention heads
Dh        width of one head (D // H), d_k in the paper
C         channels of an image or feature map; C_in / C_out of a convolution; C' inner channels
Hi, Wi    height and width of an image or feature map
K         kernel size of a convolution or pooling window
P         patch size (a patch is P x P pixels)
Hp, Wp    height and width of the grid of patches (Hi / P, Wi / P)
N         number of items: patches, positions (Hi * Wi), boxes, features
N_q       number of object queries (DETR)
M         window size in patches (Swin: attention inside M x M windows)
nW        number of windows
Y         number of classes
V         vocabulary size
R         number of prompts per class (CLIP's prompt ensembling)
n, m      numbers of examples in a data set (training / validation)
``*``     any number of leading dimensions
========  ===================================================================================

Importing the package does nothing else: no seeding, no plotting style, no downloads.
"""

__version__ = "0.1.0"
