"""Data generators of the course: deterministic, seeded, offline.

One module per kind of data; import the module you need (``from attnlab.data import dates``).
Nothing is downloaded: every data set is generated here or ships inside an installed wheel
(scikit-learn's digits and sample images, scikit-image's photographs).
"""
