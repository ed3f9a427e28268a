"""The web app: PULL in a browser, a client of the public HTTP API only.

It imports nothing else of `pull` (an import-linter contract says so): every page is built from
what the API answers over HTTP, like the mobile apps would be.
"""
