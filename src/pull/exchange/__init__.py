"""Prediction-market exchange: series, events, markets, the order book and matching engine,
positions, fees and settlement. Other modules use `service` and `schemas` only."""
