"""The README stays short and its links resolve; the documentation site builds strictly.

The site's benchmark tables are generated from ``experiments/results/`` and its config
reference from the config dataclasses (``docs/scripts/``): these tests check that the
generators fail loudly on a missing figure or an undocumented key, so a stale page cannot
be built silently.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "docs" / "scripts"
README = ROOT / "README.md"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture
def doc_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``docs/scripts`` importable as mkdocs-gen-files runs it (its directory on sys.path)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    for name in ("results", "bench_tables", "config_reference", "gen_pages"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_readme_has_at_most_250_lines() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"


def test_readme_relative_links_point_to_existing_files() -> None:
    targets = LINK.findall(README.read_text())
    relative = [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]
    assert relative, "README.md should link to the documentation pages"
    missing = [t for t in relative if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_readme_keeps_the_two_commands_first() -> None:
    text = README.read_text()
    first_block = text[text.index("```bash"):text.index("```", text.index("```bash") + 3)]
    assert "make quickstart" in first_block and "make test" in first_block


def test_every_marker_in_the_pages_names_a_generator(doc_scripts: None) -> None:
    from bench_tables import TABLES
    from config_reference import CONFIGS
    from gen_pages import MARKER

    known = {"table": set(TABLES), "config": set(CONFIGS)}
    used = [(page.name, kind, name) for page in sorted((ROOT / "docs").glob("*.md"))
            for kind, name in MARKER.findall(page.read_text())]
    assert {name for _, kind, name in used if kind == "table"} == known["table"], "every table is used on a page"
    unknown = [u for u in used if u[2] not in known[u[1]]]
    assert not unknown, unknown


def test_benchmark_tables_come_from_the_results_files(doc_scripts: None) -> None:
    from bench_tables import TABLES

    for name, generate in TABLES.items():
        table = generate()
        assert "\n|---|" in table, f"{name} made no table"
        assert "Generated from" in table, f"{name} does not say where its figures come from"
    # a figure of the file shows up in its table as printed there
    sandwich = json.loads((ROOT / "experiments/results/supernet_throughput.json").read_text())
    images = next(r["value"] for r in sandwich if r["figure"] == "sandwich_images_per_s")
    assert f"{images:,.0f} images/s" in TABLES["supernet_gpu"]()


def test_a_missing_figure_stops_the_table(doc_scripts: None, tmp_path: Path) -> None:
    from results import MissingFigure, Results

    (tmp_path / "x.json").write_text(json.dumps([
        {"bench": "b", "figure": "f", "value": 1.0, "unit": "s", "device": "d", "config": {"k": 1}},
        {"bench": "b", "figure": "f", "value": 2.0, "unit": "s", "device": "d", "config": {"k": 2}},
    ]))
    r = Results("x.json", directory=tmp_path)
    assert r.value("f", k=2) == 2.0
    with pytest.raises(MissingFigure, match="0 records of 'g'"):
        r.value("g")
    with pytest.raises(MissingFigure, match="2 records of 'f'"):
        r.value("f")


def test_config_reference_lists_every_field_with_its_default(doc_scripts: None) -> None:
    from config_reference import CONFIGS

    from nas.adapt.config import RoundConfig, SimulationConfig
    from nas.training.config import TrainConfig

    train = CONFIGS["train"]()
    assert "| `train.lr` | float | `0.05` |" in train
    assert f"| `checkpoint.every_steps` | int | `{TrainConfig().checkpoint.every_steps}` |" in train
    adapt = CONFIGS["adapt"]()
    assert f"| `rounds` | int | `{SimulationConfig().rounds}` |" in adapt
    assert "| `local.recalibrate_bn` | bool | `true` |" in adapt
    real = CONFIGS["adapt_round"]()
    assert f"| `min_importance` | float | `{RoundConfig('c', ('d',)).min_importance}` |" in real
    assert "`rounds`" not in real


def test_an_undocumented_config_key_stops_the_build(doc_scripts: None, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import config_reference
    import yaml

    keys = yaml.safe_load(config_reference.KEYS_FILE.read_text())
    del keys["adapt"]["rounds"]
    keys["adapt"]["no_such_key"] = "?"
    path = tmp_path / "config_keys.yml"
    path.write_text(yaml.safe_dump(keys))
    monkeypatch.setattr(config_reference, "KEYS_FILE", path)
    with pytest.raises(config_reference.UndocumentedKey, match="no meaning for rounds; no such field: no_such_key"):
        config_reference.config_table("adapt", "nas.adapt.config.SimulationConfig")


def test_docstring_rst_roles_become_markdown(doc_scripts: None) -> None:
    from griffe_rst import to_markdown

    text = "Uses :class:`~nas.adapt.decomposition.Decomposition` and :func:`nas.search.run_search`.\n\nExample::\n\n    x = 1\n"
    assert to_markdown(text) == "Uses `Decomposition` and `nas.search.run_search`.\n\nExample:\n\n    x = 1\n"
    assert to_markdown("a ``literal`` stays") == "a ``literal`` stays"


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    api = (site / "api" / "index.html").read_text()
    for anchor in ("search_spaces.get_space", "latency_predictors.DeviceProfile", "nas.search.run_search",
                   "nas.adapt.simulate"):
        assert f'id="{anchor}"' in api, f"the API page lacks {anchor}"
    bench = (site / "benchmarks" / "index.html").read_text()
    assert "<!-- table:" not in bench and bench.count("<table>") >= 15
    config = (site / "configuration" / "index.html").read_text()
    assert "train.label_smoothing" in config and "devices.budget_low" in config
    # the site opens offline: nothing is loaded from elsewhere (fonts, scripts, images)
    loads = re.compile(r'<(?:link|script|img|iframe)\b[^>]*\b(?:href|src)="(?:https?:)?//')
    external = [p for p in site.rglob("*.html") if loads.search(p.read_text())]
    assert not external, f"pages that load from the network: {external[:3]}"
    assert ":class:`" not in api and "Example::" not in api
