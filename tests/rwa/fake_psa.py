"""A local fake of PSA's public API: `GET /publicapi/cert/GetByCertNumber/{cert}` with a bearer
token, answering in PSA's wire format (PSACert, or IsValidRequest/ServerMessage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "fake-psa-token"


def psa_cert(cert_number: str, grade: str = "GEM MT 10") -> dict[str, Any]:
    return {
        "CertNumber": cert_number,
        "SpecID": 1234567,
        "SpecNumber": "0000001",
        "LabelType": "LighthouseLabel",
        "ReverseBarCode": False,
        "Year": "1952",
        "Brand": "TOPPS",
        "Category": "BASEBALL CARDS",
        "CardNumber": "311",
        "Subject": "MICKEY MANTLE",
        "Variety": "",
        "IsPSADNA": False,
        "IsDualCert": False,
        "GradeDescription": grade,
        "CardGrade": grade,
        "TotalPopulation": 3,
        "TotalPopulationWithQualifier": 0,
        "PopulationHigher": 0,
    }


@dataclass
class FakePsa:
    certs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, authorization)
    status: int = 200  # force an error status for every call

    async def lookup(self, request: Request) -> Response:
        cert = request.path_params["cert"]
        self.requests.append((request.url.path, request.headers.get("authorization", "")))
        if request.headers.get("authorization", "").lower() != f"bearer {TOKEN}":
            return JSONResponse({"Message": "Authorization has been denied"}, status_code=401)
        if self.status != 200:
            return JSONResponse({"Message": "error"}, status_code=self.status)
        if not cert.isdigit():
            return JSONResponse(
                {"IsValidRequest": False, "ServerMessage": "Invalid certificate number"}
            )
        if cert not in self.certs:
            return JSONResponse({"IsValidRequest": True, "ServerMessage": "No data found"})
        return JSONResponse({"PSACert": self.certs[cert]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/publicapi/cert/GetByCertNumber/{cert}", self.lookup, methods=["GET"])]
        )
