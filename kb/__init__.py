"""The knowledge base: taxonomy, techniques, papers, reported results, hardware and models."""
