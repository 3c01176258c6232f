"""Model-based scorers (RadGraph, CheXbert, BERTScore) behind one batched interface (see registry.py)."""
