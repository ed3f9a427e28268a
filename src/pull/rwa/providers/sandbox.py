"""A PSA sandbox with magic certificate numbers (docs/sandbox.md), answering like PSA would.

any other 5-15 digit number   valid; the grade is the last digit (0 means 10): 10, 9, ... 1
starting with 404             not found (PSA's "No data found")
starting with 409             found, graded "PR 1": a grade mismatch for any other claim
starting with 503             the registry is down (GRADER_UNAVAILABLE)
starting with 429             the daily quota is spent (GRADER_RATE_LIMITED)
"""

from __future__ import annotations

from pull.rwa.providers.base import CERT_NUMBER, Certificate, GraderError, GraderRateLimited

_LABELS = {
    10: "GEM MT 10",
    9: "MINT 9",
    8: "NM-MT 8",
    7: "NM 7",
    6: "EX-MT 6",
    5: "EX 5",
    4: "VG-EX 4",
    3: "VG 3",
    2: "GOOD 2",
    1: "PR 1",
}


class PsaSandbox:
    name = "PSA"
    is_sandbox = True

    async def lookup(self, cert_number: str) -> Certificate | None:
        if not CERT_NUMBER.match(cert_number) or cert_number.startswith("404"):
            return None
        if cert_number.startswith("503"):
            raise GraderError(details={"grader": self.name, "status": 503})
        if cert_number.startswith("429"):
            raise GraderRateLimited(details={"grader": self.name})
        grade = 1 if cert_number.startswith("409") else (int(cert_number[-1]) or 10)
        raw = {
            "CertNumber": cert_number,
            "Year": "1999",
            "Brand": "POKEMON GAME",
            "Category": "TCG CARDS",
            "CardNumber": "4",
            "Subject": f"SANDBOX CARD {cert_number[-4:]}",
            "CardGrade": _LABELS[grade],
            "GradeDescription": _LABELS[grade],
            "TotalPopulation": 100 + grade,
            "PopulationHigher": 10 - grade,
        }
        return Certificate(
            grader=self.name,
            cert_number=cert_number,
            grade=_LABELS[grade],
            subject=str(raw["Subject"]),
            year="1999",
            brand="POKEMON GAME",
            category="TCG CARDS",
            population=100 + grade,
            population_higher=10 - grade,
            raw=raw,
        )
