"""Small Sphinx fixes and checks the course's book needs (loaded through _config.yml's local_extensions).

* A page may cite a GPU report (``reports/gpu/<name>.json``, ``reports/<...>.json``) only if the
  file exists: a mention of a missing report is a build warning (and ``make book`` fails on
  warnings). Pages quote GPU results through ``attnlab.course.gpu_reports.describe_report``, which
  says so when there is no report.

* The inline scripts of sphinx-thebe and sphinx-togglebutton are registered twice by the Jupyter
  Book 1 stack (once with filename None, once with ''), and the second ``const THEBE_JS_URL``
  throws "Identifier 'THEBE_JS_URL' has already been declared" in every page's console. Each page
  keeps one copy of each script.
"""


import re
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", None) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


_REPORT = re.compile(r"reports/[\w./-]+\.json")


def missing_reports(text: str, root: Path) -> list[str]:
    """The report files (``reports/...json``) that ``text`` mentions and that do not exist under ``root``."""
    return sorted(m for m in set(_REPORT.findall(text)) if not (root / m).is_file())


def _check_reports(app, docname, source):
    for match in missing_reports(source[0], Path(app.srcdir)):
        logger.warning(f"{docname} cites {match}, which does not exist: quote GPU results through "
                       "attnlab.course.gpu_reports.describe_report", location=docname)


def setup(app):
    app.connect("html-page-context", _dedupe_scripts)
    app.connect("source-read", _check_reports)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
