"""Helpers for the runner's tests: a fake clock, an in-process runner on loopback, scripts."""
