"""Customer import from CSV: every row checked first, then all stored in one transaction or none.

Columns (header on line 1, any order): ``name,phones,accounts,tier,language,notes``; only ``name``
is required, a missing column is empty on every row. ``phones`` and ``accounts`` hold several numbers
separated by ``;``. Problems are reported as ``file:line: column: message`` with the line the row
starts on, like compilers do, so an editor can jump to each one.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from callcenter.crm.store import (
    DEFAULT_TIER,
    CrmStore,
    CustomerDataError,
    NewCustomer,
    already_taken,
    check_account_number,
    check_language,
    check_name,
    check_tier,
    given_twice,
)

log = logging.getLogger(__name__)

COLUMNS = ("name", "phones", "accounts", "tier", "language", "notes")
REQUIRED_COLUMNS = ("name",)
LIST_SEPARATOR = ";"
HEADER_LINE = 1
# Reported in place of a column for what concerns a whole row, or the whole file.
ROW = "(row)"
FILE = "(file)"

T = TypeVar("T")


@dataclass(frozen=True)
class ImportProblem:
    """One thing wrong with the file, where it is: ``column`` is a column name, ROW or FILE."""

    path: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.column}: {self.message}"


@dataclass(frozen=True)
class ImportReport:
    """What an import did: customers stored (0 whenever there is any problem), or every problem."""

    path: str
    imported: int = 0
    phones: int = 0
    accounts: int = 0
    problems: tuple[ImportProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.problems:
            return f"{self.path}: {len(self.problems)} problem(s); nothing imported"
        return (f"{self.path}: imported {self.imported} customer(s) with {self.phones} phone number(s) "
                f"and {self.accounts} account(s)")


@dataclass(frozen=True)
class _CheckedRow:
    line: int
    customer: NewCustomer


@dataclass
class _Import:
    """One import in progress: the rows that passed their own checks, and the problems so far."""

    store: CrmStore
    path: str
    rows: list[_CheckedRow] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)

    def problem(self, line: int, column: str, message: str) -> None:
        self.problems.append(ImportProblem(self.path, line, column, message))

    def checked(self, line: int, column: str, check: Callable[[str], T], value: str) -> T | None:
        """``check(value)``, or None with the problem noted."""
        try:
            return check(value)
        except ValueError as exc:  # CustomerDataError, PhoneNumberError
            self.problem(line, column, str(exc))
            return None


def import_customers_csv(store: CrmStore, path: str | Path) -> ImportReport:
    """Check every row of the CSV file at ``path``, then store all its customers in one transaction;
    with any problem (a bad field, a number repeated in the file or already in the CRM) store none
    and report every problem."""
    job = _Import(store, str(path))
    content = Path(path).read_bytes()
    try:
        text = content.decode("utf-8-sig")  # -sig: spreadsheets start their UTF-8 with a BOM
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        job.problem(line, FILE, f"not UTF-8 text: {exc.reason} (saved in another encoding?)")
    else:
        _check_rows(job, io.StringIO(text, newline=""))
    # Also with problems already found: the report should list them all in one go.
    _check_numbers_are_unique(job)
    customers = [row.customer for row in job.rows]
    if not job.problems:
        try:
            store.add_customers(customers)
        except CustomerDataError as exc:  # a number another writer stored since the check
            job.problem(HEADER_LINE, FILE, str(exc))
    if job.problems:
        log.warning("CRM import of %s refused: %d problem(s)", job.path, len(job.problems))
        # by line; within a line, in the order found (the columns' order)
        return ImportReport(job.path, problems=tuple(sorted(job.problems, key=lambda p: p.line)))
    log.info("CRM import of %s: %d customer(s)", job.path, len(customers))
    return ImportReport(job.path, imported=len(customers), phones=sum(len(c.phones) for c in customers),
                        accounts=sum(len(c.accounts) for c in customers))


def _check_rows(job: _Import, stream: TextIO) -> None:
    reader = csv.reader(stream)
    try:
        rows = _numbered_rows(reader)
        header_line, header = next(rows, (HEADER_LINE, []))
        if not header:
            job.problem(HEADER_LINE, FILE, f"the file is empty; expected a header: {','.join(COLUMNS)}")
            return
        columns = _check_header(job, header_line, header)
        if columns is None:
            return
        for line, cells in rows:
            if len(cells) != len(columns):
                job.problem(line, ROW, f"{len(cells)} field(s) where the header has {len(columns)}")
                continue
            _check_row(job, line, dict(zip(columns, (cell.strip() for cell in cells), strict=True)))
    except csv.Error as exc:
        job.problem(reader.line_num, FILE, f"not readable as CSV: {exc}")


def _numbered_rows(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(line the row starts on, its cells), skipping blank lines; a quoted field can span lines."""
    while True:
        start = reader.line_num + 1
        cells = next(reader, None)
        if cells is None:
            return
        if any(cell.strip() for cell in cells):
            yield start, cells


def _check_header(job: _Import, line: int, header: list[str]) -> list[str] | None:
    """The header's column names, or None (problems noted) when rows cannot be read by it."""
    columns = [name.strip().lower() for name in header]
    for name in columns:
        if name not in COLUMNS:  # e.g. 'phone' for 'phones': refused, not silently left empty
            job.problem(line, name or "(empty)", f"unknown column (expected: {', '.join(COLUMNS)})")
    for name in sorted({name for name in columns if name in COLUMNS and columns.count(name) > 1}):
        job.problem(line, name, "column given twice")
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            job.problem(line, name, "required column missing")
    return None if job.problems else columns


def _check_row(job: _Import, line: int, cells: dict[str, str]) -> None:
    """Check one row's fields, each on its own, so every problem of the row is reported."""
    problems_before = len(job.problems)
    name = job.checked(line, "name", check_name, cells.get("name", ""))
    phones = [job.checked(line, "phones", job.store.normalize, raw) for raw in _split(cells.get("phones", ""))]
    accounts = [job.checked(line, "accounts", check_account_number, raw)
                for raw in _split(cells.get("accounts", ""))]
    tier = job.checked(line, "tier", check_tier, cells.get("tier") or DEFAULT_TIER)
    language = job.checked(line, "language", check_language, cells.get("language", ""))
    if name is None or tier is None or len(job.problems) > problems_before:  # (each None was noted)
        return
    job.rows.append(_CheckedRow(line, NewCustomer(
        name=name, phones=tuple(p for p in phones if p), accounts=tuple(a for a in accounts if a),
        tier=tier, language=language, notes=cells.get("notes", ""))))


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(LIST_SEPARATOR) if part.strip()]


def _check_numbers_are_unique(job: _Import) -> None:
    """No number twice in the file (after normalisation: 13800138000 is +8613800138000), and none
    that the CRM already has."""
    first_seen_on: dict[tuple[str, str], int] = {}
    for row in job.rows:
        for column, kind, numbers in _numbers_of(row.customer):
            seen_on_this_row: set[str] = set()
            for number in numbers:
                first_line = first_seen_on.setdefault((kind, number), row.line)
                if first_line != row.line:
                    job.problem(row.line, column, f"{kind} {number} is also on line {first_line}")
                elif number in seen_on_this_row:
                    job.problem(row.line, column, given_twice(kind, number))
                seen_on_this_row.add(number)
    phone_owners, account_owners = job.store.existing_owners(
        (p for row in job.rows for p in row.customer.phones),
        (a for row in job.rows for a in row.customer.accounts))
    owners = {"phone": phone_owners, "account": account_owners}
    for row in job.rows:
        for column, kind, numbers in _numbers_of(row.customer):
            for number in dict.fromkeys(numbers):
                if owner := owners[kind].get(number):
                    job.problem(row.line, column, already_taken(kind, number, owner))


def _numbers_of(customer: NewCustomer) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(column, kind of number, numbers) for the phones and the accounts of a customer."""
    return ("phones", "phone", customer.phones), ("accounts", "account", customer.accounts)
