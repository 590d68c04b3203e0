"""Technique cost-model plugins (the contract and built-ins arrive with the plugins issue)."""
