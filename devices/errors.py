"""Errors of the ``devices`` package, so callers can catch one base class.

Tree::

    DevicesError
    ├── InvalidId        (also a ValueError) an id does not match ID_PATTERN
    │   └── ReservedId   a device id in the platform's own `kcity-` namespace
    ├── PayloadError     a message or topic is unusable as a whole (field, rule)
    ├── PilotError       a pilot definition file is wrong (file, field, message)
    ├── LorawanError     (devices.lorawan) a network-server message that cannot be read
    ├── SimConfigError   (also a ValueError) a simulator configuration no deployment could have
    └── UnknownKind      a device kind that is not in KINDS

Per-record problems inside an otherwise usable message are *not* errors: they are
returned as ``Rejected`` records by ``devices.payloads.parse_message``.
"""

from __future__ import annotations


class DevicesError(Exception):
    """Base class of every error raised by the ``devices`` package."""


class InvalidId(DevicesError, ValueError):
    """An identifier (pilot, device, ...) that does not match ``ID_PATTERN``."""

    def __init__(self, value: str, what: str = "id", reason: str = "") -> None:
        self.value = value
        self.what = what
        self.reason = reason
        super().__init__(f"invalid {what} {value!r}: {reason}" if reason else f"invalid {what}")


class ReservedId(InvalidId):
    """A device id (= MQTT username) starting with ``kcity-``: the platform's own accounts."""

    def __init__(self, value: str, what: str = "device id", prefix: str = "kcity-") -> None:
        super().__init__(
            value,
            what,
            f"ids starting with {prefix!r} are reserved for the platform's own accounts;"
            " choose another id",
        )


class PayloadError(DevicesError):
    """A message (or topic) that cannot be used at all; ``field`` says where, ``rule`` why."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class PilotError(DevicesError):
    """A pilot definition that cannot be loaded; names the file and the dotted field."""

    def __init__(self, file: str, field: str, message: str) -> None:
        self.file = file
        self.field = field
        self.message = message
        super().__init__(f"{file}: {field}: {message}")


class SimConfigError(DevicesError, ValueError):
    """A simulator configuration that cannot describe a real deployment."""


class UnknownKind(DevicesError):
    """A device kind name that is not registered in ``devices.kinds.KINDS``."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown device kind {name!r}; known kinds: {', '.join(known)}")
