"""The course's grader: a judge that never runs student code, and the reports beside the grades.

(Being built: see the module docstrings inside this package.)
"""
