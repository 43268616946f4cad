"""nbgrader configuration of the course: solutions/ is the source, labs/ the release.

The grading command (`make grade`, attnlab.course.grade) builds its own throw-away course
directories from these settings; instructors normally never call nbgrader's autograde directly.
"""
import os

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "attnlab"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
# The stub a student sees in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Per-cell time limit while autograding (the smoke profile is forced, so cells are short).
c.Execute.timeout = 120
# A test cell the student deleted is put back and graded instead of waiting for manual grading.
c.OverwriteCells.add_missing_cells = True
