"""Helpers for the runner's tests: an in-process runner on loopback, scripts."""
