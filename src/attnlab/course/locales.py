"""The Korean edition's message catalogues: ``locales/<language>/LC_MESSAGES/<page>.po``.

Sphinx's ``gettext`` builder cuts every page into messages (paragraphs, headings, list items,
admonitions, table cells, figure captions); a translated build replaces each message by its
translation and keeps everything else, so code cells and their outputs stay as they were executed
(literal blocks are no messages: ``gettext_additional_targets`` is empty in ``_config.yml``).

* :func:`templates` makes the message templates (``.pot``) from the current English sources. It
  executes nothing (``execute_notebooks: off``: messages come from the Markdown, not from outputs)
  and drops the messages that have nothing to translate: no Latin letter outside inline code, math
  and cross-references (``004``, ```lab00_cnn```, ``{doc}`00_cnn```, a Korean term alone), whose
  translation would be the message itself (Sphinx shows the English where a catalogue has none).
* :func:`update` (``make locales``) refreshes the catalogues from them with ``sphinx-intl update``:
  a new English message arrives untranslated, a changed one fuzzy (with the old translation to
  revise), a removed one is deleted.
* :func:`problems` lists what stands between the catalogues and the current English: a message
  untranslated, fuzzy, missing from its catalogue or obsolete. The test suite fails on any.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["TRANSLATED", "needs_translation", "templates", "update", "problems", "catalogue", "translate", "main"]

TRANSLATED = ("ko",)
_UNTRANSLATABLE = re.compile(r"\{[\w:.-]+\}`[^`]*`|``.+?``|`[^`]*`|\$\$.+?\$\$|\$[^$]*\$", flags=re.S)


def needs_translation(message: str) -> bool:
    """Whether a message has words to translate: a Latin letter outside code, math and roles."""
    return re.search(r"[A-Za-z]", _UNTRANSLATABLE.sub(" ", message)) is not None


def templates(root: Path, out: Path) -> Path:
    """Build the message templates of the book's current sources under ``out`` (nothing executed);
    return the folder of the ``.pot`` files (``<out>/_build/gettext``, one per page)."""
    from babel.messages.pofile import read_po, write_po

    from .editions import derived_config

    config = derived_config(root, out / "_config.yml", execute=False)
    jb = str(Path(sys.executable).parent / "jupyter-book")
    pot_dir = out / "_build" / "gettext"
    shutil.rmtree(pot_dir, ignore_errors=True)
    # no -W: the HTML builds hold the pages to no warning; extracting messages only needs the text
    proc = subprocess.run([jb, "build", "--all", "--builder", "custom",
                           "--custom-builder", "gettext", "--config", str(config), "--path-output", str(out),
                           str(root)], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("the gettext build failed:\n" + "\n".join((proc.stdout + proc.stderr).splitlines()[-30:]))
    for pot in pot_dir.rglob("*.pot"):
        with pot.open("rb") as f:
            catalog = read_po(f)
        for message in list(catalog):
            if message.id and not needs_translation(message.id):
                catalog.delete(message.id, message.context)
        with pot.open("wb") as f:
            write_po(f, catalog, width=76)
    return pot_dir


def update(root: Path, languages: tuple[str, ...] = TRANSLATED) -> Path:
    """``make locales``: refresh ``locales/<language>/LC_MESSAGES`` from the current English (the
    templates are written to ``build/locales``); return the templates' folder."""
    pot_dir = templates(root, root / "build" / "locales")
    intl = str(Path(sys.executable).parent / "sphinx-intl")
    for language in languages:
        subprocess.run([intl, "update", "-p", str(pot_dir), "-d", str(root / "locales"), "-l", language,
                        "--no-obsolete", "-j", "1"], cwd=root, check=True)
    return pot_dir


def catalogue(root: Path, page: str, language: str = "ko") -> Path:
    """The catalogue of a page (``book/intro``) in a language."""
    return root / "locales" / language / "LC_MESSAGES" / f"{page}.po"


def translate(root: Path, page: str, message: str, language: str = "ko") -> str:
    """The translation of ``message`` in ``page``'s catalogue, or the message itself where there is
    none (for the texts that no page's doctree carries: the book's title, the sidebar's captions)."""
    from babel.messages.pofile import read_po

    path = catalogue(root, page, language)
    if not path.is_file():
        return message
    with path.open("rb") as f:
        entry = read_po(f).get(message)
    return entry.string if entry is not None and entry.string and not entry.fuzzy else message


def problems(root: Path, pot_dir: Path, language: str = "ko") -> dict[str, list[str]]:
    """Page -> what is not yet translated in its catalogue, as ``"<state>: <English message>"``;
    empty when every message of every page is translated and none is fuzzy or obsolete."""
    from babel.messages.pofile import read_po

    found: dict[str, list[str]] = {}
    for pot in sorted(pot_dir.rglob("*.pot")):
        page = pot.relative_to(pot_dir).with_suffix("").as_posix()
        with pot.open("rb") as f:
            template = read_po(f)
        wanted = [m for m in template if m.id]
        po = catalogue(root, page, language)
        if not po.is_file():
            if wanted:
                found[page] = [f"no catalogue {po.relative_to(root)} (run make locales)"]
            continue
        with po.open("rb") as f:
            translated = read_po(f)
        listed = []
        for message in wanted:
            entry = translated.get(message.id, message.context)
            if entry is None:
                listed.append(f"missing (run make locales): {message.id}")
            elif entry.fuzzy:
                listed.append(f"fuzzy: {message.id}")
            elif not entry.string:
                listed.append(f"untranslated: {message.id}")
        listed += [f"obsolete (run make locales): {key}" for key in translated.obsolete]
        ids = {m.id for m in wanted}
        listed += [f"obsolete, the English is gone (run make locales): {m.id}" for m in translated
                   if m.id and m.id not in ids]
        if listed:
            found[page] = listed
    return found


def main(argv: list[str] | None = None) -> None:
    """``python -m attnlab.course.locales [update|check]``: refresh the catalogues (``make locales``)
    and say how many messages of each page are translated; ``check`` also fails when any is not."""
    import argparse

    from .notebook import find_course_root

    parser = argparse.ArgumentParser(description="The book's message catalogues (Korean edition).")
    parser.add_argument("command", choices=("update", "check"), nargs="?", default="update")
    parser.add_argument("--course", type=Path, default=None)
    args = parser.parse_args(argv)
    root = find_course_root(args.course)
    pot_dir = update(root) if args.command == "update" else templates(root, root / "build" / "locales")
    from babel.messages.pofile import read_po

    left = problems(root, pot_dir)
    for pot in sorted(pot_dir.rglob("*.pot")):
        page = pot.relative_to(pot_dir).with_suffix("").as_posix()
        with pot.open("rb") as f:
            total = sum(1 for m in read_po(f) if m.id)
        todo = len([p for p in left.get(page, []) if not p.startswith("obsolete")])
        print(f"locales: {page}: {total - todo}/{total} messages translated")
    if args.command == "check" and left:
        raise SystemExit(f"locales: {sum(map(len, left.values()))} messages to translate on {len(left)} pages")


if __name__ == "__main__":
    main()
