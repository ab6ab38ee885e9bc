"""Tests that build Keras models: parity with the annotated graph, references, generated code, inference, guards."""
