"""Instructors' and authors' tools: release the labs, the lab harness, the grading command.

Students never need this sub-package; the book and the tests use it.
"""
