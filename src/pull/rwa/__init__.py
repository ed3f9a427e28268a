"""Real-world assets: fractional shares of graded collectibles, from offering to exit
(docs/rwa.md). Other modules use it only through `pull.rwa.service` and `pull.rwa.schemas`."""
