"""The contract of a dataset folder (medcurate/datasets/<id>/, docs/adding-a-dataset.md): every
catalogue id has its quirks module, catalogue entry, sample builder, generated pins that match
the regenerated and the committed mirror, facts with sources, and tests; nothing is left in the
old places."""

import ast
import re

import pytest
from medcurate import catalogue, samples
from medcurate.atomic import file_digest
from medcurate.testing import ROOT

PKG = ROOT / "workflow" / "medcurate"
IDS = catalogue.ids()
MIRROR = ROOT / "workflow" / "sample-mirror"


def test_the_catalogue_is_the_dataset_folders():
    folders = sorted(p.name for p in (PKG / "datasets").iterdir() if p.is_dir() and p.name != "__pycache__")
    assert list(IDS) == folders and len(IDS) >= 21
    # nothing left in the old layout
    assert not (ROOT / "config" / "datasets").exists()
    assert [p.name for p in (PKG / "datasets").glob("*.py")] == ["__init__.py"]
    assert not (PKG / "samples").exists() and not list((ROOT / "tests").glob("test_" + "[a-z]*_db1.py"))
    for ds in IDS:
        assert not (ROOT / "tests" / f"test_{ds}.py").exists(), f"tests/test_{ds}.py belongs in its folder"


@pytest.mark.parametrize("ds", IDS)
def test_folder_has_every_piece(ds):
    folder = PKG / "datasets" / ds
    entry = catalogue.load_entry(folder / "dataset.yaml", ds)
    assert entry["id"] == entry["module"] == ds
    quirks = ast.parse((folder / "__init__.py").read_text())
    assert "cases" in {n.name for n in quirks.body if isinstance(n, ast.FunctionDef)}, "the quirks module defines cases()"
    builder = ast.parse((folder / "sample.py").read_text())
    for tree in (quirks, builder):  # shared code lives in formats/, families/, samples.py: never in another folder
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level + (node.module or "")).removeprefix("medcurate.datasets.").lstrip(".")
                other = target.split(".")[0]
                assert other == ds or other not in IDS, f"{ds} imports another dataset's folder ({other})"
    assert ds in {n.name for n in builder.body if isinstance(n, ast.FunctionDef)}, f"sample.py defines {ds}(out)"
    facts = (folder / "README.md").read_text()
    assert facts.startswith("# ") and re.search(r"https?://", facts), "README.md: the facts and their public sources"
    row = f"[`{ds}`](../workflow/medcurate/datasets/{ds}/README.md)"
    assert row in (ROOT / "docs" / "catalogue.md").read_text(), f"docs/catalogue.md: add the row of {ds}"
    tests = ast.parse((folder / f"test_{ds}.py").read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tests.body)
    pins = catalogue.sample_pins(ds)
    assert pins, "sample.sha256: run `medcurate samples`"
    # sample mode serves every URL source, and every placed archive, from the mirror: each is
    # pinned (a service source -- TCIA, Kaggle... -- is never served from the mirror)
    assert {s["name"] for s in entry["sources"] if "url" in s} <= set(pins)
    if entry["access"]["mode"] == "manual":
        assert any(name.startswith("manual/") for name in pins)


def test_pins_are_generated_and_match_both_mirrors(mirror):
    """The regenerated mirror equals the pins `medcurate samples` wrote and the committed copy."""
    generated = {p.relative_to(mirror).as_posix(): file_digest(p) for p in mirror.rglob("*") if p.is_file()}
    pinned = {f"{ds}/{name}": digest for ds in IDS for name, digest in catalogue.sample_pins(ds).items()}
    assert generated == pinned, "run `medcurate samples` (it rewrites each folder's sample.sha256)"
    assert {k: file_digest(MIRROR / k) for k in pinned} == pinned
    for ds in IDS:  # a small mirror keeps the demo and the suite fast
        assert sum(p.stat().st_size for p in (mirror / ds).rglob("*") if p.is_file()) < 1_000_000, ds


def test_write_pins_round_trips(tmp_path, monkeypatch):
    pins = {"stare/b.tar": "b" * 64, "stare/a.tar": "a" * 64}
    monkeypatch.setattr(catalogue, "DATASETS", tmp_path)
    (tmp_path / "stare").mkdir()
    samples.write_pins(pins)
    assert (tmp_path / "stare" / "sample.sha256").read_text() == f"{'a' * 64}  a.tar\n{'b' * 64}  b.tar\n"
    assert catalogue.sample_pins("stare") == {"a.tar": "a" * 64, "b.tar": "b" * 64}
    (tmp_path / "stare" / "sample.sha256").write_text("not a pin\n")
    with pytest.raises(catalogue.CatalogueError, match=r"sample.sha256: not a sha256sum line"):
        catalogue.sample_pins("stare")


@pytest.mark.parametrize("ds", [d for d in IDS if catalogue.load_entry(PKG / "datasets" / d / "dataset.yaml", d)["task"] != "volume_segmentation"])
def test_loaders_return_their_facts_and_leave_the_case_alone(ds, sample_root, mirror, tmp_path):
    """What loading finds (roi_types, flags, decoding parameters, the file read) is returned in
    datasets.Loaded, never set on the case: the case after loading is the case enumerated."""
    import copy

    from medcurate import convert, datasets
    from medcurate.testing import sample_plan, unpacked

    plan = sample_plan(ds)
    module = datasets.load(plan["module"])
    root = sample_root(ds) if plan["access"]["mode"] == "manual" else unpacked(mirror, ds, tmp_path / ds)
    cases = [c for c in convert.enumerate_cases(root, plan) if c.problem is None and c.image is not None][:4]
    assert cases
    for case in cases:
        before = copy.deepcopy({k: v for k, v in vars(case).items() if k != "shape"})
        try:
            convert.load_image(case, plan, module)
            if plan["task"] == "segmentation":
                datasets.loaded(module.load_mask(case, plan))
        except datasets.CaseError:
            continue  # a case the sample quarantines on purpose
        assert {k: v for k, v in vars(case).items() if k != "shape"} == before, case.case_id
