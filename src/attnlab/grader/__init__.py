"""The course's grader: a judge that never runs student code, and the reports beside the grades.

``make grade LAB=...`` (:mod:`attnlab.grader.grade`) grades every submission of a lab. Two processes
take part for each student, and only one of them runs the student's code:

* the **box** (:mod:`~attnlab.grader.box`), in a throw-away Linux sandbox
  (:mod:`~attnlab.grader.sandbox`, started warm by :mod:`~attnlab.grader.server`), runs the lab's
  set-up cells and the student's answer cells, then answers requests: call this function, build this
  class, run backward. Its ``attnlab`` is a copy in which the lab's graded reference functions and
  classes are stubs (:mod:`~attnlab.grader.stubs`); it never sees a hidden test, and holds no key;
* the **judge** (:mod:`~attnlab.grader.judge`), in the grading worker's own process, runs every test
  cell of the instructor's notebook (hidden tests included) with the student's names standing for
  objects in the box (:mod:`~attnlab.grader.remote`). It makes the inputs and keeps its own copies,
  computes each reference here with the real ``attnlab``, and receives the box's results as plain
  data (:mod:`~attnlab.grader.wire`: arrays with dtype and shape, numbers, strings; no pickle).

What it promises:

* the verdict is computed where student code cannot reach it: nothing the student's code does in
  its own process (in-place changes of the inputs, replaced library functions, a shadowed builtin,
  a forged message on the channel, a file read or written in the sandbox) changes how the judge's
  test runs, only what data comes back; an in-place change of the judge's inputs is reported and
  fails that test;
* honest code is never penalised for its form: any Python in an answer cell (helpers, classes,
  decorators, private attributes, ``getattr``, any import that works, prints and plots) is graded on
  its results alone;
* a student who hangs, floods or exhausts memory loses only their own points, within the per-student
  time limit; a malformed notebook is reported and graded as what it is, and never stops the class;
* the feedback never shows a hidden test; every output kept from the sandbox is capped.

What it cannot promise:

* *how* a result was computed: an answer that calls a library's own implementation of what the
  exercise asks for (``torch.nn.functional.conv2d`` for a convolution written "from scratch") earns
  the points, since the judge sees results, not code;
* that the answer is the student's own: copied answers earn the points; the similarity report
  (:mod:`~attnlab.grader.similarity`) flags them for the instructor to judge;
* anything about the judge's own test cells: a test that trusts what comes back (uses a returned
  value as its own reference) grades nothing; the course's tests compute their references here.
"""
