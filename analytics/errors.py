"""Exceptions of the analytics package, so that callers can catch one base class.

Data-quality findings (missing nights, resets, day-burning) are *records* in the results,
never exceptions; these are raised only when a computation cannot be done at all.

    AnalyticsError
     ├── InputError        inputs that violate the documented contract (unsorted
     │                     timestamps, mismatched array lengths, bad parameters)
     └── AstronomyError    the sun does not set or rise at the location on a date
                           (polar day or night), so no dusk–dawn night exists
"""

from __future__ import annotations


class AnalyticsError(Exception):
    """Base class of every error raised by the analytics package."""


class InputError(AnalyticsError):
    """Inputs break the documented contract of an analytics function."""


class AstronomyError(AnalyticsError):
    """No sunset/sunrise exists for a date at the location."""
