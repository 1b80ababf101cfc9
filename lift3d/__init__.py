"""lift3d: lift inconsistent 2D instance masks into a consistent 3D instance segmentation in a neural field."""

__version__ = "0.1.0"
