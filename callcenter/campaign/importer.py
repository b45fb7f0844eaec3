"""Contacts and do-not-call numbers from CSV, checked row by row.

Contacts (:func:`import_contacts`): a header on the first line, then one contact per row. Column
``number`` is required; ``name`` and ``customer_id`` are optional; any other column is kept as the
contact's data (shown to the agent). Numbers are stored in E.164; one written without ``+country``
is read as dialled in the campaign's ``default_region``.

Unlike the CRM import (all or nothing), a contact list is imported row by row: the good rows are
stored, in one transaction, and every refused row is reported as ``file:line: column: message``
(the line the row starts on). A list of 50 000 contacts with three typos should not wait for the
typos. Rows whose number is on the do-not-call list are stored with status ``dnc``, so the report
and ``campaign status`` show they were blocked. What concerns the whole file (not UTF-8, not
readable as CSV, a header without ``number``) imports nothing.

Do-not-call numbers (:func:`import_dnc`): one number per line, or a CSV with a ``number`` column
(and optionally ``reason``).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.campaign.model import COMPLETED, DNC, PENDING, STOPPED
from callcenter.campaign.store import (
    MAX_CONTACT_NAME,
    MAX_CUSTOMER_ID,
    MAX_REASON,
    CampaignStore,
    CampaignStoreError,
    NewContact,
)
from callcenter.crm.phone import PhoneNumberError, check_region, normalize_number

log = logging.getLogger(__name__)

NUMBER, NAME, CUSTOMER_ID, REASON = "number", "name", "customer_id", "reason"
HEADER_LINE = 1
ROW = "(row)"    # in place of a column: the problem is about the whole row
FILE = "(file)"  # ... or the whole file
COMMENT = "#"    # do-not-call lists: lines starting with it are ignored

Source = str | Path | bytes


@dataclass(frozen=True)
class ImportProblem:
    """One thing wrong with the file, where it is: ``column`` is a column name, ROW or FILE."""

    source: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.column}: {self.message}"


@dataclass(frozen=True)
class ImportReport:
    """What a contact import did: ``imported`` contacts stored to be called, ``dnc`` stored but
    blocked by the do-not-call list, and the problems of the rows refused (``errors``)."""

    source: str
    imported: int = 0
    dnc: int = 0
    errors: tuple[ImportProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def refused(self) -> int:
        """Rows refused (a row with two problems counts once); a problem with the whole file
        counts as one."""
        return len({problem.line for problem in self.errors})

    def summary(self) -> str:
        if any(problem.column == FILE for problem in self.errors):
            return f"{self.source}: nothing imported: the file cannot be read as a contact list"
        text = f"{self.source}: imported {self.imported} contact(s)"
        if self.dnc:
            text += f", {self.dnc} more on the do-not-call list (stored as dnc, never called)"
        if self.errors:
            text += f"; {self.refused} row(s) refused"
        return text


@dataclass(frozen=True)
class DncImportReport:
    """What a do-not-call import did: numbers ``added``, numbers ``already_listed``, and problems."""

    source: str
    added: int = 0
    already_listed: int = 0
    errors: tuple[ImportProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if any(problem.column == FILE for problem in self.errors):
            return f"{self.source}: nothing added: the file cannot be read as a list of numbers"
        text = f"{self.source}: added {self.added} number(s) to the do-not-call list"
        if self.already_listed:
            text += f", {self.already_listed} already on it"
        if self.errors:
            text += f"; {len({p.line for p in self.errors})} line(s) refused"
        return text


@dataclass
class _Job:
    source: str
    problems: list[ImportProblem] = field(default_factory=list)

    def problem(self, line: int, column: str, message: str) -> None:
        self.problems.append(ImportProblem(self.source, line, column, message))

    @property
    def file_refused(self) -> bool:
        return any(problem.column == FILE for problem in self.problems)

    def sorted_problems(self) -> tuple[ImportProblem, ...]:
        return tuple(sorted(self.problems, key=lambda p: p.line))  # stable: a row's columns in order


# ------------------------------------------------------------------------------ contacts
def import_contacts(store: CampaignStore, campaign_name: str, source: Source, *,
                    region: str | None = None) -> ImportReport:
    """Import contacts into campaign ``campaign_name`` from ``source``: a Path (a CSV file), bytes
    (its content) or str (CSV text itself). ``region``: for numbers without +country code (default:
    the campaign's ``default_region``). Good rows are stored in one transaction, the others reported.

    Raises CampaignStoreError (a ValueError) for an unknown campaign or one that is stopped or
    completed, ValueError for an unknown region; problems with the file are in the report."""
    campaign = store.get(campaign_name)
    if campaign.state in (STOPPED, COMPLETED):
        raise CampaignStoreError(f"campaign {campaign.name!r} is {campaign.state}: it takes no more contacts")
    region = check_region(region or campaign.spec.default_region)
    job = _Job(_name_of(source))
    rows = _read_rows(job, source)
    contacts = [] if rows is None else _check_contacts(job, rows, region)
    if job.file_refused:
        contacts = []
    if contacts:
        # Numbers the campaign already has (an earlier import of an overlapping list).
        existing = store.existing_numbers(campaign.id, (c.number for c in contacts))
        for contact in contacts:
            if contact.number in existing:
                earlier = existing[contact.number]
                job.problem(contact.row or HEADER_LINE, NUMBER, f"{contact.number} is already in campaign "
                            f"{campaign.name!r}" + (f" (imported from line {earlier})" if earlier else ""))
        contacts = [c for c in contacts if c.number not in existing]
    if contacts:
        blocked = store.dnc_listed_among(c.number for c in contacts)
        contacts = [NewContact(c.number, c.name, c.customer_id, c.data, DNC if c.number in blocked else PENDING,
                               c.row) for c in contacts]
        try:
            store.add_contacts(campaign.id, contacts)
        except CampaignStoreError as exc:  # a number another writer added since the check
            job.problem(HEADER_LINE, FILE, f"nothing imported: {exc}; import the file again")
            contacts = []
    dnc = sum(1 for c in contacts if c.status == DNC)
    report = ImportReport(job.source, imported=len(contacts) - dnc, dnc=dnc, errors=job.sorted_problems())
    log.info("campaign %s: %s", campaign.name, report.summary())
    return report


def _check_contacts(job: _Job, rows: Iterator[tuple[int, list[str]]], region: str) -> list[NewContact]:
    header = next(rows, None)
    if header is None:
        job.problem(HEADER_LINE, FILE, f"the file is empty; expected a header with a {NUMBER!r} column")
        return []
    header_line, cells = header
    columns = _check_header(job, header_line, cells, required=NUMBER)
    if columns is None:
        return []
    contacts: list[NewContact] = []
    first_line_of: dict[str, int] = {}
    for line, cells in rows:
        if len(cells) != len(columns):
            job.problem(line, ROW, f"{len(cells)} field(s) where the header has {len(columns)}")
            continue
        values = dict(zip(columns, (cell.strip() for cell in cells), strict=True))
        problems_before = len(job.problems)
        number = _number(job, line, NUMBER, values[NUMBER], region)
        name = values.get(NAME) or None
        if name is not None and len(name) > MAX_CONTACT_NAME:
            job.problem(line, NAME, f"longer than {MAX_CONTACT_NAME} characters")
        customer_id = values.get(CUSTOMER_ID) or None
        if customer_id is not None and len(customer_id) > MAX_CUSTOMER_ID:
            job.problem(line, CUSTOMER_ID, f"longer than {MAX_CUSTOMER_ID} characters")
        if number is not None:
            first = first_line_of.setdefault(number, line)
            if first != line:
                job.problem(line, NUMBER, f"duplicate of line {first} (both are {number})")
        if number is None or len(job.problems) > problems_before:
            continue
        data = {key: value for key, value in values.items() if key not in (NUMBER, NAME, CUSTOMER_ID)}
        contacts.append(NewContact(number, name, customer_id, data, PENDING, line))
    return contacts


def _number(job: _Job, line: int, column: str, raw: str, region: str) -> str | None:
    if not raw:
        job.problem(line, column, "missing number")
        return None
    try:
        return normalize_number(raw, region)
    except PhoneNumberError as exc:
        job.problem(line, column, str(exc))
        return None


def _check_header(job: _Job, line: int, cells: list[str], *, required: str) -> list[str] | None:
    """The column names (trimmed, lower case), or None with the problems noted."""
    columns = [cell.strip().lower() for cell in cells]
    problems_before = len(job.problems)
    if required not in columns:
        shown = ",".join(cells)
        job.problem(line, FILE, f"no {required!r} column in the header line {shown[:80]!r} "
                    "(expected a CSV file whose first line names the columns, e.g. number,name)")
    if "" in columns:
        job.problem(line, FILE, f"column {columns.index('') + 1} of the header has no name")
    for name in sorted({name for name in columns if name and columns.count(name) > 1}):
        job.problem(line, FILE, f"column {name!r} given twice")
    return None if len(job.problems) > problems_before else columns


# ------------------------------------------------------------------------------ do not call
def import_dnc(store: CampaignStore, source: Source, region: str, *, reason: str = "") -> DncImportReport:
    """Add the numbers of ``source`` (Path, bytes or str, as for :func:`import_contacts`) to the
    do-not-call list: one number per line, or a CSV with a header naming a ``number`` column (and
    optionally ``reason``, which wins over ``reason``). Blank lines and lines starting with '#'
    are ignored. Good numbers are added in one transaction, bad ones reported."""
    region = check_region(region)
    job = _Job(_name_of(source))
    rows = _read_rows(job, source)
    entries: dict[str, str] = {}
    if rows is not None:
        rows = ((line, cells) for line, cells in rows if not cells[0].lstrip().startswith(COMMENT))
        first = next(rows, None)
        if first is not None and NUMBER in (cell.strip().lower() for cell in first[1]):
            columns = _check_header(job, first[0], first[1], required=NUMBER)
            lines = [] if columns is None else _dnc_csv_rows(job, columns, rows)
        else:
            # One number per line: the whole line is the number, commas and all (none is valid).
            lines = [(line, ",".join(cells), "") for line, cells in ([first] if first else [])]
            lines += [(line, ",".join(cells), "") for line, cells in rows]
        for line, raw, row_reason in lines:
            number = _number(job, line, NUMBER, raw.strip(), region)
            if row_reason and len(row_reason) > MAX_REASON:
                job.problem(line, REASON, f"longer than {MAX_REASON} characters")
            elif number is not None:
                entries.setdefault(number, row_reason or reason)
    if job.file_refused:
        entries = {}
    already = len(store.dnc_listed_among(entries))
    added = store.dnc_add_entries(entries.items()) if entries else 0
    report = DncImportReport(job.source, added=added, already_listed=already, errors=job.sorted_problems())
    log.info("%s", report.summary())
    return report


def _dnc_csv_rows(job: _Job, columns: list[str], rows: Iterator[tuple[int, list[str]]]
                  ) -> list[tuple[int, str, str]]:
    lines = []
    for line, cells in rows:
        if len(cells) != len(columns):
            job.problem(line, ROW, f"{len(cells)} field(s) where the header has {len(columns)}")
            continue
        values = dict(zip(columns, (cell.strip() for cell in cells), strict=True))
        lines.append((line, values[NUMBER], values.get(REASON, "")))
    return lines


# ------------------------------------------------------------------------------ reading
def _name_of(source: Source) -> str:
    return str(source) if isinstance(source, Path) else "<csv>"


def _read_rows(job: _Job, source: Source) -> Iterator[tuple[int, list[str]]] | None:
    """(line the row starts on, its cells) for each non-blank row, or None with the problem
    noted when the source is not text. A CSV error on the way is noted as a FILE problem."""
    if isinstance(source, Path):
        try:
            source = source.read_bytes()
        except OSError as exc:
            job.problem(HEADER_LINE, FILE, f"cannot read the file: {exc.strerror or exc}")
            return None
    if isinstance(source, bytes):
        try:
            text = source.decode("utf-8-sig")  # -sig: spreadsheets start their UTF-8 with a BOM
        except UnicodeDecodeError as exc:
            line = source.count(b"\n", 0, exc.start) + 1
            job.problem(line, FILE, f"not UTF-8 text: {exc.reason} (a binary file, or saved in another encoding?)")
            return None
    else:
        text = source.removeprefix("\ufeff")
    if "\x00" in text:
        job.problem(text.count("\n", 0, text.index("\x00")) + 1, FILE, "not a text file (it contains NUL bytes)")
        return None
    return _numbered_rows(job, csv.reader(io.StringIO(text, newline=""), strict=True))


def _numbered_rows(job: _Job, reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Skipping blank lines; a quoted field can span lines, so the start line is kept."""
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            job.problem(reader.line_num or start, FILE, f"not readable as CSV: {exc}")
            return
        if cells is None:
            return
        if any(cell.strip() for cell in cells):
            yield start, cells
