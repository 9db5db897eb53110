"""Shift statistics shared by every modality."""
