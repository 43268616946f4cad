"""Small Sphinx fixes and checks the course's book needs (loaded through _config.yml's local_extensions).

* Two editions (``attnlab_edition``: ``"self-study"``, the default, or ``"class"``): in the class
  edition a ``literalinclude`` of a graded object (a function or class some lab's solution cell
  defines, see ``attnlab.course.editions``) shows a note with a link to the lab instead of the code,
  and a code cell tagged ``graded-answer`` (a page computing a graded step inline) shows only its
  output.

* A page may cite a GPU report (``reports/gpu/<name>.json``, ``reports/<...>.json``) only if the
  file exists: a mention of a missing report is a build warning (and ``make book`` fails on
  warnings). Pages quote GPU results through ``attnlab.course.gpu_reports.describe_report``, which
  says so when there is no report.

* Two languages: English (the source) and Korean (``language: ko``, from the catalogues in
  ``locales/ko/LC_MESSAGES``), built into ``<site>/ko/``. Each page starts with a link to the same
  page in the other language ("한국어" / "English"), relative, so that it works from disk too.

* The inline scripts of sphinx-thebe and sphinx-togglebutton are registered twice by the Jupyter
  Book 1 stack (once with filename None, once with ''), and the second ``const THEBE_JS_URL``
  throws "Identifier 'THEBE_JS_URL' has already been declared" in every page's console. Each page
  keeps one copy of each script.
"""


import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.directives.code import LiteralInclude
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


_ANSWER_TAGS = re.compile(r"^(:tags:\s*\[)([^\]]*\bgraded-answer\b[^\]]*)\]", flags=re.M)


def hide_answer_cells(text: str) -> str:
    """Class edition: code cells tagged ``graded-answer`` (a page computing a graded step inline)
    keep their output but lose their input."""
    return _ANSWER_TAGS.sub(lambda m: f"{m.group(1)}{m.group(2)}, remove-input]", text)


TRANSLATIONS = {"ko": "한국어"}   # a translated build lives in <site>/<language>/


def edition_switch(pagename: str, language: str) -> str:
    """The HTML of the link from page ``pagename`` of the ``language`` build to the same page in the
    other language: English pages link the Korean one (``ko/`` below the site root), Korean pages
    the English one (one folder up)."""
    up = "../" * pagename.count("/")
    if language in TRANSLATIONS:
        href, label, lang = f"{up}../{pagename}.html", "English", "en"
    else:
        href, label, lang = f"{up}ko/{pagename}.html", TRANSLATIONS["ko"], "ko"
    return (f'<p class="attnlab-edition-switch"><a href="{href}" hreflang="{lang}" lang="{lang}">'
            f"{label}</a></p>\n")


def _edition_switch(app, pagename, templatename, context, doctree):
    if doctree is not None and "body" in context:
        context["body"] = edition_switch(pagename, app.config.language or "en") + context["body"]


def _read_source(app, docname, source):
    if app.config.attnlab_edition == "class":
        source[0] = hide_answer_cells(source[0])
    _check_reports(app, docname, source)


def _check_reports(app, docname, source):
    for match in missing_reports(source[0], Path(app.srcdir)):
        logger.warning(f"{docname} cites {match}, which does not exist: quote GPU results through "
                       "attnlab.course.gpu_reports.describe_report", location=docname)


class ClassEditionLiteralInclude(LiteralInclude):
    """``literalinclude`` that, in the class edition, holds back the source of graded objects."""

    def run(self):
        env = self.state.document.settings.env
        target = (self.options.get("pyobject") or "").split(".")[0]
        if env.config.attnlab_edition == "class" and target:
            graded = _graded(env.app)
            if target in graded:
                return [self._note(env, graded[target])]
        return super().run()

    def _note(self, env, obj):
        lab_file = f"labs/{obj.lab}/{obj.lab}.ipynb"
        rel = Path(env.docname).parent
        reftarget = str(Path(*([".."] * len(rel.parts))) / lab_file) if rel.parts else lab_file
        note = nodes.admonition(classes=["tip", "attnlab-graded"])
        note += nodes.title(text="Graded in a lab")
        para = nodes.paragraph()
        para += nodes.Text("You write ")
        para += nodes.literal(text=obj.name)
        para += nodes.Text(f" yourself in Lab {obj.lab_number}, exercise {obj.exercise}. The reference code is held "
                           "back in the class edition: ")
        link = addnodes.download_reference("", "", refdoc=env.docname, reftarget=reftarget, refexplicit=True,
                                           reftype="download", refdomain="")
        link += nodes.literal(text=f"{obj.lab}.ipynb")
        para += link
        para += nodes.Text(".")
        note += para
        return note


def _graded(app):
    if not hasattr(app, "_attnlab_graded"):
        from attnlab.course.editions import graded_objects

        app._attnlab_graded = graded_objects(Path(app.srcdir))
    return app._attnlab_graded


def _class_edition_config(app, config):
    """The class edition ships no page sources (they would show the code cells' text)."""
    if config.attnlab_edition == "class":
        config.html_copy_source = False
        config.html_theme_options = dict(config.html_theme_options or {}, use_download_button=False)


def setup(app):
    app.add_config_value("attnlab_edition", "self-study", "env", types=[str])
    app.connect("config-inited", _class_edition_config)
    app.add_directive("literalinclude", ClassEditionLiteralInclude, override=True)
    app.connect("html-page-context", _dedupe_scripts)
    app.connect("html-page-context", _edition_switch)
    app.connect("source-read", _read_source)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
