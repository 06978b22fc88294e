"""kcity package."""
