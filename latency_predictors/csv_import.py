"""Measurements taken elsewhere: a CSV with ``arch``, ``latency_ms`` and optionally ``energy_mj``.

``arch`` is the arch's JSON (for ``nb201`` also the cell string or the index). Every row
is checked before anything is stored; the first bad row is reported as one line naming
the file, the line and the fix.

The file must be UTF-8 text; a UTF-8 byte-order mark (what spreadsheet programs write) is
accepted. A UTF-16/UTF-32 file or a binary file is refused with a line that says so,
never with the codec's own message. Reading is linear in the number of rows (duplicates
are found with a dictionary), with a progress bar on stderr for large files.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from latency_predictors.errors import InputError
from search_spaces import SearchSpace

REQUIRED = ("arch", "latency_ms")
_SNIFF_BYTES = 4096
_WIDE_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)  # fmt: skip


@dataclass(frozen=True)
class ImportedRow:
    arch: Any
    latency_ms: float
    energy_mj: float | None


def read_measurements_csv(path: str | Path, space: SearchSpace, *, progress: bool = True,
                          skipped: list[int] | None = None) -> list[ImportedRow]:
    """Parse and validate ``path`` against ``space`` (``ValueError``/``FileNotFoundError``).

    ``progress`` shows a bar on stderr while rows are read (only if reading takes more
    than a second, so small files print nothing). With a ``skipped`` list, rows whose
    ``latency_ms`` is empty are skipped and their line numbers appended to it (a file of
    ``edgenas devices suggest`` not measured to the end); without it they are an error.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"measurements file {path} is a directory, not a CSV file; pass --measurements FILE.csv")
    if not path.is_file():
        raise FileNotFoundError(f"measurements file {path} does not exist; pass --measurements FILE.csv")
    total = _check_text(path)
    try:
        return _read(path, space, total, progress, skipped)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not a text CSV file (byte 0x{exc.object[exc.start]:02x} is not UTF-8); "
            "export it as a UTF-8 CSV with the columns arch,latency_ms[,energy_mj]"
        ) from None
    except csv.Error as exc:
        raise InputError(f"{path} is not a readable CSV file ({exc}); export it as a UTF-8 CSV") from None


def _check_text(path: Path) -> int:
    """Refuse UTF-16/32 and binary files by their first bytes; return the number of lines."""
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
            lines = head.count(b"\n")
            for block in iter(lambda: f.read(1 << 20), b""):
                lines += block.count(b"\n")
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror or exc}); check its permissions") from None
    if not head:
        raise InputError(f"{path} is empty; it needs a header arch,latency_ms[,energy_mj] and one row per arch")
    for bom, codec in _WIDE_BOMS:
        if head.startswith(bom):
            raise InputError(f"{path} is {codec} text; save it as a UTF-8 CSV (columns arch,latency_ms[,energy_mj])")
    nuls = head.count(b"\x00")
    if nuls:
        # ASCII text in UTF-16 without a byte-order mark: every other byte is NUL
        even, odd = head[0::2].count(b"\x00"), head[1::2].count(b"\x00")
        if nuls >= len(head) // 4 and max(even, odd) >= 0.9 * nuls:
            raise InputError(f"{path} is UTF-16 text; save it as a UTF-8 CSV (columns arch,latency_ms[,energy_mj])")
        raise InputError(
            f"{path} is not a text CSV file (it holds NUL bytes: binary data); "
            "pass a UTF-8 CSV with the columns arch,latency_ms[,energy_mj]"
        )
    return lines


def _read(path: Path, space: SearchSpace, total: int, progress: bool,
          skipped: list[int] | None = None) -> list[ImportedRow]:
    # utf-8-sig: a byte-order mark is dropped, not read as part of the first column's name
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            found = ", ".join(h if len(h) <= 40 else h[:37] + "..." for h in header[:20]) or "none"
            raise InputError(
                f"{path}: missing column(s) {', '.join(missing)} (found: {found}); "
                "the header must name arch,latency_ms[,energy_mj]"
            )
        rows = []
        first_line: dict[str, int] = {}
        bar = tqdm(total=max(total - 1, 0), desc=f"reading {path.name}", unit="row", disable=not progress,
                   delay=1.0, leave=False)  # fmt: skip
        with bar:
            for raw in reader:
                bar.update(1)
                line = reader.line_num
                row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
                if skipped is not None and not row.get("latency_ms"):
                    skipped.append(line)
                    continue
                try:
                    arch = space.arch_from_json(row["arch"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(
                        f"{path}:{line}: unknown {space.name} arch ({_short(exc)}); fix or remove the row"
                    ) from None
                latency = _positive(row["latency_ms"], "latency_ms", path, line)
                energy = _positive(row["energy_mj"], "energy_mj", path, line) if row.get("energy_mj") else None
                key = space.arch_key(arch)
                if key in first_line:
                    raise InputError(
                        f"{path}:{line}: arch {key[:80]} already appears on line {first_line[key]}; "
                        "keep one row per arch"
                    )
                first_line[key] = line
                rows.append(ImportedRow(arch, latency, energy))
    if not rows:
        if skipped:
            raise InputError(f"{path}: no row has a latency_ms yet ({len(skipped)} without); measure the archs "
                             "and fill the latency_ms column first")
        raise InputError(f"{path} has a header but no rows; add one row per measured arch")
    return rows


def _short(exc: Exception, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _positive(text: str, column: str, path: Path, line: int) -> float:
    shown = repr(text) if len(text) <= 40 else repr(text[:37]) + "..."
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{path}:{line}: {column} {shown} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{path}:{line}: {column} must be positive, got {shown}; fix or remove the row")
    return value
