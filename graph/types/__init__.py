"""Strawberry types, inputs and enums, one module per domain area."""
