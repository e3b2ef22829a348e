"""Fitting and predicting: the PyMC fit, personalisation, the neural residual, the WorldModel."""
