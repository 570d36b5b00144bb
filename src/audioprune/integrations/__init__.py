"""Bridges to training frameworks. Each module imports its framework, which is an optional extra:
``audioprune.integrations.lightning`` needs ``pip install 'audioprune[lightning]'``."""
