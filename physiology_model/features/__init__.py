"""The canonical daily table → the policy's features (batch and online), and preprocessing."""
