"""Notifications: one center for everything PULL tells a customer (docs/messaging.md)."""
