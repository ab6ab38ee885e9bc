"""Tests of data loading and training: CIFAR-10 and image folders, jobs, processes, fine-tuning, limits."""
