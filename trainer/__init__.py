"""napari-gleason trainer: the model of "Pathological Image Segmentation with Noisy Labels".

GUI-free on purpose: nothing in this package imports Qt or napari, so it runs from the
command line (``python -m trainer``), in cluster jobs and under ``torchrun``.
"""

__version__ = "0.1.0"
