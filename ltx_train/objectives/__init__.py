"""Training objectives: what is computed from a batch and a model, kept out of ``models/``."""
