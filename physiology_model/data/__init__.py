"""Files → the canonical daily table: loaders, units and load, splits, summaries."""
