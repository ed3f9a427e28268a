"""Sanctions screening against a list in OFAC's SDN CSV format (`sdn.csv`).

Each row: ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage, GRT,
Vess_flag, Vess_owner, Remarks; `-0-` means empty. Individuals are written "LAST, First Middle";
dates of birth appear in Remarks as "DOB 01 Jan 1970" or "DOB 1970". Only individuals are
screened: every token of the applicant's first and last name must appear in the listed name.
A name match whose listed date of birth is the applicant's (the same day, or the same year when
only the year is listed) is a `hit`; a name match without a listed date of birth, or with a
different one, is `review` (a person decides); anything else is `clear`.

KYC_SANCTIONS_LIST_PATH points at the file; by default a small list of fictional names shipped
in `pull/kyc/data/sdn_test.csv` is used.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

Outcome = Literal["clear", "review", "hit"]

_DOB = re.compile(r"DOB\s+(?:(\d{1,2})\s+([A-Za-z]{3})\s+)?(\d{4})")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}


def _tokens(name: str) -> frozenset[str]:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return frozenset(t for t in re.split(r"[^a-z0-9]+", plain.casefold()) if t)


@dataclass(frozen=True)
class Entry:
    ent_num: str
    name: str
    tokens: frozenset[str]
    dobs: tuple[tuple[int | None, int | None, int], ...]  # (day, month, year)


@dataclass(frozen=True)
class Screening:
    outcome: Outcome
    matches: tuple[str, ...]  # ent_num of matching entries


class SanctionsList:
    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries

    @classmethod
    def load(cls, path: str | Path | None = None) -> SanctionsList:
        if path:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        else:
            text = files("pull.kyc").joinpath("data/sdn_test.csv").read_text(encoding="utf-8")
        entries: list[Entry] = []
        for row in csv.reader(text.splitlines()):
            if len(row) < 3:
                continue
            cells = [c.strip() for c in row]
            if cells[2].strip('"').casefold() != "individual":
                continue
            remarks = cells[11] if len(cells) > 11 else ""
            dobs: list[tuple[int | None, int | None, int]] = []
            for day, month, year in _DOB.findall(remarks):
                dobs.append((int(day) if day else None, _MONTHS.get(month.casefold()), int(year)))
            entries.append(Entry(cells[0], cells[1], _tokens(cells[1]), tuple(dobs)))
        return cls(entries)

    def screen(self, *, first_name: str, last_name: str, dob: dt.date) -> Screening:
        wanted = _tokens(f"{first_name} {last_name}")
        if not wanted:
            return Screening("clear", ())
        outcome: Outcome = "clear"
        matches: list[str] = []
        for entry in self.entries:
            if not wanted <= entry.tokens:
                continue
            matches.append(entry.ent_num)
            if any(_same_dob(d, dob) for d in entry.dobs):
                outcome = "hit"
            elif outcome != "hit":
                outcome = "review"
        return Screening(outcome, tuple(matches))


def _same_dob(listed: tuple[int | None, int | None, int], dob: dt.date) -> bool:
    day, month, year = listed
    if year != dob.year:
        return False
    if day is None or month is None:
        return True  # only the year is listed, and it is the same
    return (day, month) == (dob.day, dob.month)


@lru_cache(maxsize=4)
def load_cached(path: str) -> SanctionsList:
    return SanctionsList.load(path or None)
