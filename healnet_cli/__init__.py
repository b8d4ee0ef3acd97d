"""healnet: multimodal whole-slide image + omics survival analysis from the command line."""

__version__ = "0.1.0"
