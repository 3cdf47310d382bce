"""charrnn: train a character-level RNN language model on any text file and sample from it.

Importing the package is cheap (no torch): the sampler runs on numpy alone, and torch is
imported only by the modules that train or evaluate.
"""

__version__ = "0.1.0"
