"""Offline builders of tiny models/tokenizers/processors for the demo and tests."""
