"""primum: first, do no harm. A governed release control plane."""
__version__ = "0.1.0"
