"""Messaging on Matrix: PULL provisions customers' accounts and rooms on a homeserver."""
