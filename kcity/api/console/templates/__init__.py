"""Templates of the firm console (a package so that they ship with the wheel)."""
