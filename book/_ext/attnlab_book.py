"""Small Sphinx fixes the course's book needs (loaded through _config.yml's local_extensions).

* The inline scripts of sphinx-thebe and sphinx-togglebutton are registered twice by the Jupyter
  Book 1 stack (once with filename None, once with ''), and the second ``const THEBE_JS_URL``
  throws "Identifier 'THEBE_JS_URL' has already been declared" in every page's console. Each page
  keeps one copy of each script.
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", None) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
