"""k-anonymity engine: hierarchies, full-domain search, Mondrian, privacy models, metrics."""
