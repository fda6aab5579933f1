"""Reading the CSV files of SPEC section 5: UTF-8 (BOM accepted), RFC 4180, a header row whose
names are trimmed and case-insensitive, blank lines skipped, every problem named by file and line."""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from portalctl.core.errors import InvalidInput

MAX_REPORTED_ERRORS = 20
# No stored text may hold NUL (PostgreSQL refuses it outright), so a row with one is invalid.
NUL_PROBLEM = "a cell contains a NUL character"
csv.field_size_limit(1024 * 1024)


@dataclass(frozen=True)
class CsvRecord:
    """One data row: its first physical line, its cells by (lower-case) column name, and its
    cells as they were (for a failed-rows file)."""

    line: int
    values: dict[str, str]
    problem: str | None = None
    cells: tuple[str, ...] = ()


@dataclass
class CsvErrors:
    """Collects row problems so a whole file is validated before anything is written."""

    source: str
    messages: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.messages) < MAX_REPORTED_ERRORS:
            self.messages.append(f"{self.source}:{line}: {message}")

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = self.count - len(self.messages)
        summary = (
            self.messages[0]
            if self.count == 1
            else (
                f"{self.source}: {self.count} invalid rows, nothing was written; first: "
                + self.messages[0]
            )
        )
        details = list(self.messages) + ([f"... and {more} more"] if more > 0 else [])
        raise InvalidInput(summary, details=details)


def open_csv_text(path: str | Path) -> tuple[IO[str], str]:
    """Open a CSV file (or ``-`` for stdin) as UTF-8 text with any BOM removed."""
    stream, source, _ = open_csv_hashed(path)
    return stream, source


class Sha256Reader(io.RawIOBase):
    """A byte stream that hashes what is read through it, so an input is read once (a FIFO or
    stdin cannot be read twice) and still identified by its SHA-256. Seeking back to the start
    starts the hash again."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.digest = hashlib.sha256()

    @property
    def name(self) -> Any:
        return getattr(self.raw, "name", None)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return int(count or 0)

    def seekable(self) -> bool:
        return self.raw.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self.raw.seek(offset, whence)
        if position == 0:
            self.digest = hashlib.sha256()
        return position

    def tell(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        if self.raw is not getattr(sys.stdin, "buffer", None):
            self.raw.close()
        super().close()

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def open_csv_hashed(path: str | Path) -> tuple[IO[str], str, Sha256Reader]:
    """``open_csv_text``, and the reader whose ``hexdigest()`` is the SHA-256 of what was read."""
    if str(path) == "-":
        source, raw = "<stdin>", sys.stdin.buffer
    else:
        source, raw = str(path), open_input_file(path, "rb", buffering=0)
    reader = Sha256Reader(raw)
    text = io.TextIOWrapper(io.BufferedReader(reader), encoding="utf-8-sig", newline="")
    return text, source, reader


@dataclass
class OutputFile:
    """A report being written: a file portalctl opened, or stdout (``-``), left open."""

    stream: IO[str]
    owned: bool

    def close(self) -> None:
        if self.owned:
            self.stream.close()
        else:
            self.stream.flush()


def open_output_file(path: str | Path) -> OutputFile:
    """Open a report for writing before any work is done (``-`` is stdout), so a path that
    cannot be written is invalid input (exit 5) while nothing has changed yet."""
    if str(path) == "-":
        return OutputFile(sys.stdout, owned=False)
    try:
        return OutputFile(open(path, "w", encoding="utf-8", newline=""), owned=True)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such directory for the report") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a directory") from None
    except PermissionError:
        raise InvalidInput(f"{path}: permission denied") from None
    except OSError as error:
        raise InvalidInput(f"{path}: cannot be written ({error.strerror})") from None


class FailedRows:
    """``--failed-rows OUT.csv``: the input's own header and exactly the input rows a run did
    not apply, their cells as they were, so the file can be corrected and fed back in. Opened
    before anything is done (``open_output_file``); rows are written in the input's order."""

    def __init__(self, output: OutputFile) -> None:
        self.output = output
        self.writer = csv.writer(output.stream, lineterminator="\n")
        self.header: list[str] = []
        self.rows: dict[int, tuple[str, ...]] = {}

    def keep_header(self, header: list[str]) -> None:
        self.header = header

    def add(self, line: int, cells: Sequence[str]) -> None:
        self.rows[line] = tuple(cells)

    def close(self) -> None:
        self.writer.writerow(self.header)
        for line in sorted(self.rows):
            self.writer.writerow(self.rows[line])
        self.output.close()


def open_input_file(path: str | Path, mode: str = "r", **options: Any) -> IO[Any]:
    """Open an input file; a missing, unreadable or directory path is invalid input (exit 5)."""
    try:
        return open(path, mode, **options)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a directory, not a CSV file") from None
    except PermissionError:
        raise InvalidInput(f"{path}: permission denied") from None
    except OSError as error:
        raise InvalidInput(f"{path}: cannot be read ({error.strerror})") from None


def read_csv(
    stream: IO[str],
    source: str,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    on_header: Callable[[list[str]], None] | None = None,
) -> Iterator[CsvRecord]:
    """Yield the data rows of a CSV stream after checking its header against the known columns
    (``on_header`` is given the header's cells as they were)."""
    reader = csv.reader(stream, strict=True)
    raw_header = _read_header(stream, reader, source)
    if on_header is not None:
        on_header(raw_header)
    header = [cell.strip().lower() for cell in raw_header]
    known = set(required) | set(optional)
    unknown = [name for name in header if name not in known]
    if unknown:
        raise InvalidInput(
            f"{source}:{reader.line_num}: unknown column {unknown[0]!r} "
            f"(expected {', '.join(required)}"
            + (f"; optional {', '.join(optional)}" if optional else "")
            + ")"
        )
    missing = [name for name in required if name not in header]
    if missing:
        raise InvalidInput(f"{source}:{reader.line_num}: missing column {missing[0]!r}")
    duplicated = {name for name in header if header.count(name) > 1}
    if duplicated:
        raise InvalidInput(
            f"{source}:{reader.line_num}: column {sorted(duplicated)[0]!r} appears twice"
        )
    width = len(header)
    previous_end = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise _not_utf8(stream, source, reader) from None
        except csv.Error as error:
            raise InvalidInput(f"{source}:{reader.line_num}: malformed CSV ({error})") from None
        line = previous_end + 1
        previous_end = reader.line_num
        if not cells or all(not cell.strip() for cell in cells):
            continue
        raw = tuple(cells)
        if len(cells) != width:
            yield CsvRecord(line, {}, f"expected {width} fields, found {len(cells)}", raw)
            continue
        if any("\x00" in cell for cell in cells):
            yield CsvRecord(line, {}, NUL_PROBLEM, raw)
            continue
        yield CsvRecord(line, {name: cell.strip() for name, cell in zip(header, cells)}, None, raw)


def _not_utf8(stream: IO[str], source: str, reader: Any) -> InvalidInput:
    """Name the first undecodable line: the decoder reads ahead, so re-read the file's bytes."""
    line = reader.line_num + 1
    name = getattr(stream, "name", None)
    if isinstance(name, str) and Path(name).is_file():
        with open(name, "rb") as raw:
            for number, chunk in enumerate(raw, start=1):
                try:
                    (
                        chunk[3:] if number == 1 and chunk.startswith(b"\xef\xbb\xbf") else chunk
                    ).decode("utf-8")
                except UnicodeDecodeError:
                    line = number
                    break
    return InvalidInput(f"{source}:{line}: not valid UTF-8 (save the file as UTF-8)")


def _read_header(stream: IO[str], reader: Any, source: str) -> list[str]:
    try:
        for cells in reader:
            if cells and any(cell.strip() for cell in cells):
                return list(cells)
    except UnicodeDecodeError:
        raise _not_utf8(stream, source, reader) from None
    except csv.Error as error:
        raise InvalidInput(f"{source}:{reader.line_num}: malformed CSV ({error})") from None
    raise InvalidInput(f"{source}: empty file (no header row)")
