"""Forward surgery as named passes (switches, outputs, prune, dynamic batch, cut)."""
