"""Reading an evidence bundle: its manifest, its files' hashes, its tables as Arrow."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kcity.errors import BundleError
from kcity.evidence.tables import DEAD_LETTERS, EVENTS, MESSAGES, READINGS, Table

_SPECS: dict[str, Table] = {t.name: t for t in (*READINGS.values(), EVENTS, MESSAGES, DEAD_LETTERS)}


@dataclass(frozen=True)
class FileCheck:
    name: str
    expected: str | None  # None: in the zip but not in the manifest
    actual: str | None  # None: in the manifest but not in the zip

    @property
    def ok(self) -> bool:
        return self.expected is not None and self.expected == self.actual


class Bundle:
    """An open bundle; `manifest` is its parsed manifest.json."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
            self.manifest: dict[str, Any] = json.loads(self._zip.read("manifest.json"))
        except (OSError, zipfile.BadZipFile) as exc:
            raise BundleError(f"{path}: not a readable bundle ({exc})") from exc
        except (KeyError, ValueError) as exc:
            raise BundleError(f"{path}: no readable manifest.json ({exc})") from exc

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *_: object) -> None:
        self._zip.close()

    def read(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise BundleError(f"{self.path}: cannot read {name} ({exc})") from exc

    def check_files(self) -> list[FileCheck]:
        """Every file against the manifest's SHA-256; extra and missing files fail."""
        listed: dict[str, Any] = self.manifest.get("files", {})
        present = set(self._zip.namelist()) - {"manifest.json"}
        checks = []
        for name in sorted(present | set(listed)):
            actual = None
            if name in present:
                h = hashlib.sha256()
                try:
                    with self._zip.open(name) as fh:
                        for block in iter(lambda: fh.read(1 << 20), b""):
                            h.update(block)
                    actual = h.hexdigest()
                except (zipfile.BadZipFile, OSError):  # a CRC error: the bytes changed
                    actual = "unreadable"
            expected = listed[name]["sha256"] if name in listed else None
            checks.append(FileCheck(name, expected, actual))
        return checks

    def table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """An exported table by name (`streetlight_readings`, `events`, `devices`, …)."""
        entry = self.manifest.get("tables", {}).get(name)
        if entry is None:
            raise BundleError(f"{self.path}: the bundle has no table {name!r}")
        data = io.BytesIO(self.read(entry["file"]))
        try:
            if entry["file"].endswith(".parquet"):
                return pq.read_table(data, columns=columns)
            spec = _SPECS.get(name)
            options = pacsv.ConvertOptions(
                column_types=spec.schema if spec else None,
                include_columns=columns,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            )
            return pacsv.read_csv(data, convert_options=options)
        except (pa.ArrowException, OSError) as exc:
            raise BundleError(f"{self.path}: cannot read {entry['file']} ({exc})") from exc
