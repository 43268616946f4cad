"""Execute the book's pages in parallel before Jupyter Book builds them: ``python -m attnlab.course.book_execute``.

Jupyter Book 1 executes the pages of a book one after another (``execute_notebooks: cache``). This
command runs the pages whose code changed in several processes at once and stores the executed
notebooks in the same jupyter-cache the build reads (``_build/.jupyter_cache``), under the same
key (the page read by myst-nb's own reader), so that the build that follows only renders them.
A page that fails here is not cached: the build executes it again and reports the error with its
traceback, as without this step. The time of every page is printed, so budgets can be watched.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import yaml

from .notebook import find_course_root

__all__ = ["book_pages", "read_page", "stale_pages", "execute_pages", "main"]


def book_pages(root: Path) -> list[Path]:
    """The pages of ``_toc.yml`` (root first), as paths of existing ``.md`` / ``.ipynb`` files."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    pages = []
    for name in names:
        for suffix in (".md", ".ipynb"):
            if (root / f"{name}{suffix}").is_file():
                pages.append(root / f"{name}{suffix}")
                break
    return pages


def _myst_config(root: Path):
    from myst_parser.config.main import MdParserConfig

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    extensions = (config.get("parse") or {}).get("myst_enable_extensions") or []
    return MdParserConfig(enable_extensions=set(extensions))


def read_page(path: Path, root: Path) -> nbformat.NotebookNode | None:
    """The page as the notebook myst-nb executes (``None`` for a page without code cells)."""
    if path.suffix == ".ipynb":
        nb = nbformat.read(str(path), as_version=4)
    else:
        text = path.read_text(encoding="utf-8")
        if "{code-cell}" not in text:
            return None
        from myst_nb.core.read import read_myst_markdown_notebook

        nb = read_myst_markdown_notebook(text, _myst_config(root), path=str(path))
    return nb if any(c.cell_type == "code" for c in nb.cells) else None


def _cache(root: Path):
    from jupyter_cache import get_cache

    return get_cache(str(root / "_build" / ".jupyter_cache"))


# Pages started first, in this order: chapter 7 runs longest (its MAE pre-training), and chapter 4
# trains the ViT that chapters 6 and 8 load from the model cache (``attnlab.zoo``); a page that needs
# a model another process is training waits for it, and a waiting process leaves its core idle.
# The other pages follow, largest first.
FIRST = ("07_self_supervision", "04_vit")


def _schedule(pages: list[Path]) -> list[Path]:
    """``pages`` in the order they are handed to the processes: :data:`FIRST`, then by size."""
    rank = {name: i for i, name in enumerate(FIRST)}
    return sorted(pages, key=lambda p: (rank.get(p.stem, len(FIRST)), -p.stat().st_size))


def stale_pages(root: Path) -> list[Path]:
    """Pages with code whose current source has no executed copy in the cache."""
    cache, stale = _cache(root), []
    for page in book_pages(root):
        nb = read_page(page, root)
        if nb is None:
            continue
        try:
            cache.match_cache_notebook(nb)
        except KeyError:
            stale.append(page)
    return stale


def _execute(args: tuple[str, str, int]) -> tuple[str, str | None, float, str | None]:
    """Worker: execute one page; return (path, executed notebook JSON or None, seconds, error)."""
    from jupyter_cache.executors.utils import single_nb_execution

    path, root, timeout = Path(args[0]), Path(args[1]), args[2]
    nb = read_page(path, root)
    start = time.perf_counter()
    result = single_nb_execution(nb, cwd=str(path.parent), allow_errors=False, timeout=timeout, meta_override=True)
    seconds = time.perf_counter() - start
    if result.err is not None:
        return str(path), None, seconds, f"{type(result.err).__name__}: {str(result.err)[:300]}"
    return str(path), nbformat.writes(nb), seconds, None


def execute_pages(root: Path, *, jobs: int = 2, timeout: int = 600, only: list[str] | None = None,
                  log=print) -> dict[str, float]:
    """Execute the stale pages (of ``only``, page names like ``04_vit``, if given) in ``jobs``
    processes and cache them; return seconds per page."""
    from jupyter_cache.base import CacheBundleIn

    todo = [p for p in stale_pages(root) if not only or p.stem in only]
    if not todo:
        log("book_execute: every page is cached")
        return {}
    os.environ.setdefault("ATTNLAB_PROGRESS", "text")
    cache, times = _cache(root), {}
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(todo)))) as pool:
        work = [(str(p), str(root), timeout) for p in _schedule(todo)]
        for path, executed, seconds, error in pool.map(_execute, work):
            rel = Path(path).relative_to(root)
            times[str(rel)] = seconds
            if error:
                log(f"book_execute: {rel} FAILED after {seconds:.0f} s ({error}); the build will show the traceback")
                continue
            cache.cache_notebook_bundle(CacheBundleIn(nbformat.reads(executed, as_version=4), path,
                                                      data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            log(f"book_execute: {rel} executed in {seconds:.1f} s")
    log(f"book_execute: {len(todo)} page(s), {sum(times.values()):.0f} s of execution in "
        f"{time.perf_counter() - started:.0f} s with {jobs} process(es)")
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course", type=Path, default=None, help="course root (default: found from the working directory)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("pages", nargs="*", help="only these pages, if stale (e.g. 04_vit 06_swin; default: all)")
    args = parser.parse_args(argv)
    execute_pages(find_course_root(args.course), jobs=args.jobs, timeout=args.timeout, only=args.pages or None)


if __name__ == "__main__":
    main()
