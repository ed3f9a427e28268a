"""Operator tools: post-deployment smoke checks (`pull smoke`)."""
