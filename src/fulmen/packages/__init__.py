"""Packages a run's code needs that the worker installs for it, outside the sandbox: each one
once, into a repository on the worker's disk that runs read and never write."""
