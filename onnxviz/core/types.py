"""Typed aliases shared by every layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

Image = str | Path | np.ndarray  # a picture's path, a .npy path, or the array itself
