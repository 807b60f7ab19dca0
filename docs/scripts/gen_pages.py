"""Fill the generated parts of the documentation at build time (run by ``mkdocs-gen-files``).

A page under ``docs/`` may hold markers on a line of their own:

- ``<!-- table: NAME -->``: a benchmark table from ``experiments/results/``
  (``bench_tables.TABLES``);
- ``<!-- config: NAME -->``: a config reference table from the config dataclasses
  (``config_reference.CONFIGS``).

Each marker is replaced by its table in the built site; the page source keeps the
marker. An unknown name, a missing results file or figure, or an undocumented config key
stops the build with an error that says which.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tables import TABLES  # noqa: E402
from config_reference import CONFIGS  # noqa: E402

MARKER = re.compile(r"^<!-- (table|config): ([\w.-]+) -->$", re.MULTILINE)
GENERATORS = {"table": TABLES, "config": CONFIGS}


def fill(text: str, page: str = "page") -> str:
    """``text`` with every marker replaced by its generated table."""
    def replace(match: re.Match[str]) -> str:
        kind, name = match.groups()
        generator = GENERATORS[kind].get(name)
        if generator is None:
            known = ", ".join(sorted(GENERATORS[kind]))
            raise KeyError(f"{page}: unknown {kind} {name!r} in a marker; known: {known}")
        return generator()
    return MARKER.sub(replace, text)


def main() -> None:
    import mkdocs_gen_files

    editor = mkdocs_gen_files.FilesEditor.current()
    for file in list(editor.files.documentation_pages()):
        text = Path(file.abs_src_path).read_text(encoding="utf-8") if file.abs_src_path else file.content_string
        if not MARKER.search(text):
            continue
        filled = fill(text, file.src_uri)
        with mkdocs_gen_files.open(file.src_uri, "w") as out:
            out.write(filled)
        mkdocs_gen_files.set_edit_path(file.src_uri, file.src_uri)


if __name__ in ("__main__", "<run_path>"):  # run by mkdocs-gen-files (runpy.run_path)
    main()
