"""Errors of the application shell.

KcityError                 one readable line for the user, exit code 1
├── SettingsError          a setting is malformed
├── StackError             the local stack could not start, stop or be reached
├── DatabaseError          the database is unreachable or a query failed
├── BrokerError            the broker refused or did not answer an admin command
├── NotFound               a pilot, device or token that does not exist
├── BundleError            an evidence bundle cannot be written or read
└── RawDropped             an analysis would read raw readings retention dropped
"""


class KcityError(Exception):
    """Base of every error the CLI turns into one line on stderr."""


class SettingsError(KcityError):
    pass


class StackError(KcityError):
    pass


class DatabaseError(KcityError):
    pass


class BrokerError(KcityError):
    pass


class NotFound(KcityError):
    pass


class BundleError(KcityError):
    """An evidence bundle that cannot be written or read (not a tamper finding: those are
    reported figure by figure by `kcity verify`)."""


class RawDropped(KcityError):
    """An analysis would read raw readings that `kcity retention apply` dropped: computed
    from what is left it would be quietly wrong, so it is refused, naming the bundles."""
