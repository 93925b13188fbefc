"""Fulmen: a self-hosted runtime for workflows and user scripts.

Importing ``fulmen`` has no side effects.
"""

__version__ = "0.1.0"
