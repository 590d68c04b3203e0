"""Workloads: the operators of one forward pass per phase, with their FLOPs and bytes."""
