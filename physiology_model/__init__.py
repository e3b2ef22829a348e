"""Physiology: wearable exports → the canonical daily table → load, features, world model."""

from physiology_model.data.table import ACTIONS, DailyTable
from physiology_model.errors import DataError

__all__ = ["ACTIONS", "DailyTable", "DataError"]
