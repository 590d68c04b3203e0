"""Hardware registry: device specs (peaks per precision, memory, links) and their capabilities."""
