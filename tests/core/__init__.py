"""Tests of the pure core: config, annotation, fields, ops, formatting, diagrams, teaching."""
