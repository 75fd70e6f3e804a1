"""medcurate.catalogue: schema validation of entries and configs, defaults, error messages that
name the file and the field, sample-mirror resolution, config digests and overrides."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml
from medcurate import catalogue
from medcurate.errors import CatalogueError

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "workflow" / "medcurate" / "datasets"
ENTRY_FILES = sorted(DATASETS.glob("*/dataset.yaml"))
OPEN_IDS = ["acdc", "african_fetal_planes", "chase_db1", "fetal_head_biometry", "fetal_planes_db", "isic2019",
            "kermany_oct", "mias", "promise12", "stare"]
GATED_IDS = ["bcdr", "cbis_ddsm", "cdd_cesm", "chestxray14", "csaw_s", "drive", "inbreast", "kits19", "mura",
             "odir5k", "ultrasound_nerve", "ead2019", "acdc_lunghp"]
OPEN_IDS = sorted(OPEN_IDS + ["openi"])  # the chest X-ray family (issue 15)
GATED_IDS = sorted(GATED_IDS + ["chexpert", "mimic_cxr_jpg", "padchest"])
# Publishers that serve only plain http (no https host is known): mini-MIAS's historic peipa server.
HTTP_ONLY = {"mias"}
ALL_IDS = sorted(OPEN_IDS + GATED_IDS)


def raw_entry(ds: str = "fetal_planes_db") -> dict:
    return yaml.safe_load((DATASETS / ds / "dataset.yaml").read_text(encoding="utf-8"))


def config_file(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text(encoding="utf-8"))


def write_catalogue(folder: Path, entries: dict[str, dict | str]) -> Path:
    """A catalogue folder; a str value is written verbatim (for broken YAML)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, entry in entries.items():
        text = entry if isinstance(entry, str) else yaml.safe_dump(entry, sort_keys=False)
        (folder / f"{stem}.yaml").write_text(text, encoding="utf-8")
    return folder


def load_from(folder: Path, datasets=("fetal_planes_db",), **extra) -> dict[str, dict]:
    config = catalogue.load_config({"datasets": list(datasets), "catalogue": str(folder), **extra}, ROOT)
    return catalogue.load_catalogue(config)


# --- the shipped catalogue and configs --------------------------------------------------------


def test_the_catalogue_has_entries():
    assert [p.parent.name for p in ENTRY_FILES] == ALL_IDS == list(catalogue.ids())


@pytest.mark.parametrize("path", ENTRY_FILES, ids=lambda p: p.parent.name)
def test_every_catalogue_entry_validates(path):
    entry = catalogue.load_entry(path, path.parent.name)
    assert entry["id"] == path.parent.name
    # defaults are filled in where the entry leaves them out
    assert set(entry["convert"]) >= {"shards", "image_mode", "unknown_colour", "point_radius", "mask_size_mismatch", "slices"}
    assert set(entry["clean"]) == {"min_component_area", "fill_holes"}
    assert set(entry["select"]) >= {"empty_mask", "allowed_roi_types", "exclude_flags", "crude_shapes"}
    assert set(entry["split"]) >= {"val_fraction", "test_fraction", "dedupe", "split_conflicts", "near_duplicates"}
    assert set(entry["qc"]) == {"qc_samples"}
    assert entry["unpack"]["nested"] is True


def test_entry_defaults_fill_only_what_is_missing():
    entry = catalogue.load_entry(DATASETS / "african_fetal_planes" / "dataset.yaml", "african_fetal_planes")
    assert entry["convert"]["shards"] == 2        # from the file
    assert entry["split"]["test_fraction"] == 0.2  # schema default
    assert entry["convert"]["image_mode"] == "keep"
    assert entry["clean"]["min_component_area"] == 0
    assert entry["clean"]["fill_holes"] is False


@pytest.mark.parametrize("name, ids", [("config.yaml", OPEN_IDS), ("sample.yaml", ALL_IDS)])
def test_shipped_configs_validate_and_load_the_catalogue(name, ids):
    """The demo builds the whole catalogue; the real-data default only what needs no agreement."""
    config = catalogue.load_config(config_file(name), ROOT)
    assert config["_basedir"] == str(ROOT)
    entries = catalogue.load_catalogue(config)  # expands 'datasets: all'
    assert sorted(config["datasets"]) == ids
    assert sorted(entries) == ALL_IDS
    for ds in config["datasets"]:
        p = catalogue.plan(entries[ds], config)
        assert p["id"] == ds
        assert p["png_compress_level"] == 1
        assert catalogue.shard_count(p) >= 1


def test_config_defaults_are_filled():
    config = catalogue.load_config({"datasets": ["fetal_planes_db"]}, ROOT)
    assert config["catalogue"] is None  # the package's dataset folders only
    assert config["output_dir"] == "results"
    assert config["resources_dir"] == "resources"
    assert config["png_compress_level"] == 1
    assert config["shards"] is None
    assert config["options"] == {}
    assert config["manual_dirs"] == {}
    assert config["sample_mirror"] is None
    assert config["download"] == {"zenodo_api": "https://zenodo.org/api", "timeout": 60, "retries": 8, "backoff": 2,
                                  "parallel": 4}


def test_load_config_does_not_mutate_its_input():
    given = {"datasets": ["fetal_planes_db"]}
    catalogue.load_config(given, ROOT)
    assert given == {"datasets": ["fetal_planes_db"]}


def test_plan_fills_step_option_defaults(plans):
    p = plans["fetal_planes_db"]
    assert p["convert"]["shards"] == 8
    assert p["split"]["val_fraction"] == 0.1
    assert p["split"]["test_fraction"] == 0.2
    assert p["convert"]["unknown_colour"] == "quarantine"
    assert plans["fetal_planes_db"]["png_compress_level"] == 1
    assert plans["fetal_planes_db"]["sample"] is False


# --- malformed catalogue entries --------------------------------------------------------------


def _bad_sha(e):
    e["sources"][0]["sha256"] = "not-a-sha"


def _unknown_top_key(e):
    e["colour"] = "blue"


def _unknown_source_key(e):
    e["sources"][0]["checksum"] = "abc"


def _bad_task(e):
    e["task"] = "keypoints"


def _no_license(e):
    del e["license"]


def _manual_without_details(e):
    e["access"] = {"mode": "manual"}


def _bad_curation(e):
    e["split"]["val_fraction"] = 2


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (_bad_sha, "sources[0].sha256", ["not-a-sha"]),
        (_unknown_top_key, "(top level)", ["colour"]),
        (_unknown_source_key, "sources[0]", ["checksum"]),
        (_bad_task, "task", ["detection"]),
        (_no_license, "(top level)", ["license", "required"]),
        (_manual_without_details, "access", ["request_url", "instructions", "expected"]),
        (_bad_curation, "split.val_fraction", ["2"]),
    ],
    ids=["sha256-pattern", "unknown-key", "unknown-source-key", "task-enum", "missing-license",
         "manual-access", "curation-range"],
)
def test_malformed_entry_names_file_and_field(tmp_path, mutate, field, words):
    entry = raw_entry()
    mutate(entry)
    folder = write_catalogue(tmp_path / "cat", {"fetal_planes_db": entry})
    with pytest.raises(CatalogueError) as info:
        load_from(folder)
    msg = str(info.value)
    assert str(folder / "fetal_planes_db.yaml") in msg
    assert f"'{field}'" in msg
    for word in words:
        assert word in msg


def test_manual_access_with_all_details_validates(tmp_path):
    entry = raw_entry()
    entry["access"] = {"mode": "manual", "request_url": "https://example.org/request",
                       "instructions": "sign the agreement", "expected": [{"path": "images"}]}
    folder = write_catalogue(tmp_path / "cat", {"fetal_planes_db": entry})
    loaded = load_from(folder)["fetal_planes_db"]
    assert loaded["access"]["expected"] == [{"path": "images", "kind": "file"}]


def test_manual_access_missing_only_expected_is_named(tmp_path):
    entry = raw_entry()
    entry["access"] = {"mode": "manual", "request_url": "https://example.org/request", "instructions": "x"}
    folder = write_catalogue(tmp_path / "cat", {"fetal_planes_db": entry})
    with pytest.raises(CatalogueError, match=r"field 'access': 'expected' is a required property") as info:
        load_from(folder)
    assert "request_url" not in str(info.value)


def test_id_must_equal_file_name(tmp_path):
    folder = write_catalogue(tmp_path / "cat", {"fetal_planes_db": raw_entry(), "renamed": raw_entry()})
    with pytest.raises(CatalogueError) as info:
        load_from(folder)
    msg = str(info.value)
    assert str(folder / "renamed.yaml") in msg
    assert "field 'id'" in msg
    assert "'renamed'" in msg


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""], ids=["list", "scalar", "empty"])
def test_entry_that_is_not_a_mapping(tmp_path, text):
    folder = write_catalogue(tmp_path / "cat", {"fetal_planes_db": text})
    with pytest.raises(CatalogueError) as info:
        load_from(folder)
    assert str(info.value) == f"{folder / 'fetal_planes_db.yaml'}: expected a YAML mapping at the top level"


def test_broken_yaml_syntax_names_file_and_line(tmp_path):
    folder = write_catalogue(tmp_path / "cat", {"fetal_planes_db": "id: fetal_planes_db\nname: [unclosed\n"})
    with pytest.raises(CatalogueError) as info:
        load_from(folder)
    msg = str(info.value)
    assert msg.startswith(f"{folder / 'fetal_planes_db.yaml'}: not valid YAML")
    assert "line 2" in msg


def test_a_broken_entry_not_requested_still_fails(tmp_path):
    """Every entry is validated, not only the requested ones."""
    bad = raw_entry("african_fetal_planes")
    bad["task"] = "keypoints"
    folder = write_catalogue(tmp_path / "cat", {"fetal_planes_db": raw_entry(), "african_fetal_planes": bad})
    with pytest.raises(CatalogueError, match=r"(?s)african_fetal_planes\.yaml: .*field 'task'"):
        load_from(folder, datasets=["fetal_planes_db"])


def test_unreadable_catalogue_entry_is_a_catalogue_error(tmp_path):
    folder = tmp_path / "cat"
    (folder / "fetal_planes_db.yaml").mkdir(parents=True)  # a folder named like an entry
    with pytest.raises(CatalogueError, match="cannot read"):
        catalogue.load_entry(folder / "fetal_planes_db.yaml")


# --- config errors ----------------------------------------------------------------------------


def test_unknown_dataset_lists_known_ids():
    config = catalogue.load_config({"datasets": ["fetal_planes_db", "no_such_set"]}, ROOT)
    with pytest.raises(CatalogueError) as info:
        catalogue.load_catalogue(config)
    msg = str(info.value)
    assert "no_such_set" in msg
    assert "known: " + ", ".join(ALL_IDS) in msg
    assert "medcurate/datasets" in msg


@pytest.mark.parametrize("key, value", [("options", {"nope": {"convert": {"shards": 2}}}), ("manual_dirs", {"nope": "/data"})])
def test_options_or_manual_dir_for_unknown_dataset(key, value):
    config = catalogue.load_config({"datasets": ["fetal_planes_db"], key: value}, ROOT)
    with pytest.raises(CatalogueError, match=rf"workflow config: field '{key}\.nope': no such dataset \(known: "):
        catalogue.load_catalogue(config)


def test_old_curation_key_says_where_each_option_went(tmp_path):
    old = {"datasets": ["fetal_planes_db"], "curation": {"fetal_planes_db": {"val_fraction": 0.2, "min_component_area": 5}}}
    with pytest.raises(CatalogueError) as info:
        catalogue.load_config(old, ROOT)
    msg = str(info.value)
    assert "'curation.fetal_planes_db.val_fraction' is now 'options.fetal_planes_db.split.val_fraction'" in msg
    assert "'curation.fetal_planes_db.min_component_area' is now 'options.fetal_planes_db.clean.min_component_area'" in msg
    entry = raw_entry("fetal_planes_db")
    entry["curation"] = {"dedupe": True, "qc_samples": 4}
    (tmp_path / "fetal_planes_db.yaml").write_text(yaml.safe_dump(entry))
    with pytest.raises(CatalogueError, match=r"'curation.dedupe' is now 'split.dedupe'\n  'curation.qc_samples' is now 'qc.qc_samples'"):
        catalogue.load_entry(tmp_path / "fetal_planes_db.yaml")


@pytest.mark.parametrize(
    "override, field",
    [({"split": {"val_fraction": 2}}, "split.val_fraction"),
     ({"convert": {"shards": 0}}, "convert.shards"),
     ({"convert": {"image_mode": "CMYK"}}, "convert.image_mode"),
     ({"split": {"speed": "fast"}}, "split")],
)
def test_invalid_option_override_rejected_by_plan(override, field):
    config = catalogue.load_config({"datasets": ["fetal_planes_db"], "options": {"fetal_planes_db": override}}, ROOT)
    entries = catalogue.load_catalogue(config)
    with pytest.raises(CatalogueError) as info:
        catalogue.plan(entries["fetal_planes_db"], config)
    msg = str(info.value)
    assert msg.startswith("workflow config (options.fetal_planes_db)")
    assert f"field '{field}'" in msg


def test_valid_option_override_is_applied():
    config = catalogue.load_config({"datasets": ["fetal_planes_db"], "options": {
        "fetal_planes_db": {"split": {"val_fraction": 0.15}, "convert": {"shards": 16}}}}, ROOT)
    entries = catalogue.load_catalogue(config)
    p = catalogue.plan(entries["fetal_planes_db"], config)
    assert p["split"]["val_fraction"] == 0.15
    assert p["convert"]["shards"] == 16
    assert p["split"]["dedupe"] is True  # untouched options stay
    # the entry itself is not changed by the override
    assert entries["fetal_planes_db"]["convert"]["shards"] == 8


@pytest.mark.parametrize(
    "bad, field",
    [({"png_compress_level": 10}, "png_compress_level"),
     ({"shards": 0}, "shards"),
     ({"datasets": []}, "datasets"),
     ({"datasets": ["Bad-Name"]}, "datasets[0]"),
     ({"output": "x"}, "(top level)"),
     ({"download": {"zenodo_api": "ftp://x"}}, "download.zenodo_api")],
)
def test_invalid_config_is_rejected_naming_the_field(bad, field):
    with pytest.raises(CatalogueError) as info:
        catalogue.load_config({"datasets": ["fetal_planes_db"], **bad}, ROOT)
    assert str(info.value).startswith("workflow config: invalid config entry")
    assert f"field '{field}'" in str(info.value)


# --- sample mirror ----------------------------------------------------------------------------


def test_sample_mirror_sources_point_at_pinned_files():
    raw = config_file("sample.yaml")
    config = catalogue.load_config(raw, ROOT)
    entries = catalogue.load_catalogue(config)
    pins = catalogue.mirror_pins(config)
    mirror_root = (ROOT / "workflow" / "sample-mirror").resolve()
    seen = set()
    for ds in ALL_IDS:
        p = catalogue.plan(entries[ds], config)
        assert p["sample"] is True
        assert p["manual_dir"] == str(ROOT / "workflow" / "sample-mirror" / ds / "manual")
        # a service source (TCIA, KiTS19, Kaggle) is not mirrored: the mirror holds its placed release
        real = {s["name"]: s["url"] for s in entries[ds]["sources"] if "url" in s}
        assert [s["name"] for s in p["sources"]] == list(real)
        if len(real) < len(entries[ds]["sources"]):
            assert p["access"]["mode"] == "manual"
        for src in p["sources"]:
            key = f"{ds}/{src['name']}"
            seen.add(key)
            assert src["url"].startswith("file://")
            path = Path(unquote(urlparse(src["url"]).path))
            assert path == mirror_root / ds / src["name"]
            assert src["sha256"] == pins[key]
            assert src["catalogue_url"] == real[src["name"]]
            assert src["catalogue_url"].startswith("https://") or ds in HTTP_ONLY
            assert src["served_from"] == "sample-mirror"
            assert "zenodo" not in src and "mirrors" not in src  # nothing that would reach a publisher
            assert hashlib.sha256(path.read_bytes()).hexdigest() == src["sha256"]
        # a gated dataset's stand-in for the user's folder: its archives are pinned too
        manual = {f"{ds}/manual/{name}" for name in p["manual_pins"]}
        assert all((mirror_root / key).is_file() for key in manual)
        seen |= manual
    assert seen == set(pins)


def test_without_mirror_sources_keep_the_catalogue_url(plans):
    src = plans["fetal_planes_db"]["sources"][0]
    assert src["url"] == src["catalogue_url"] == "https://zenodo.org/records/3904280/files/FETAL_PLANES_ZENODO.zip"
    assert src["zenodo"] == {"record": 3904280}
    assert "served_from" not in src


def test_sample_mirror_missing_pin():
    raw = config_file("sample.yaml")
    raw["sample_mirror"]["sha256"] = catalogue.mirror_pins(catalogue.load_config(raw, ROOT))  # another mirror's pins
    del raw["sample_mirror"]["sha256"]["fetal_head_biometry/Trans-cerebellum.zip"]
    config = catalogue.load_config(raw, ROOT)
    entries = catalogue.load_catalogue(config)
    catalogue.plan(entries["fetal_planes_db"], config)  # other datasets are unaffected
    with pytest.raises(CatalogueError) as info:
        catalogue.plan(entries["fetal_head_biometry"], config)
    msg = str(info.value)
    assert "'sample_mirror.sha256'" in msg
    assert "fetal_head_biometry/Trans-cerebellum.zip" in msg


def test_sample_mirror_pin_must_be_a_sha256():
    raw = config_file("sample.yaml")
    raw["sample_mirror"]["sha256"] = {"fetal_planes_db/FETAL_PLANES_ZENODO.zip": "abc"}
    with pytest.raises(CatalogueError, match=r"field 'sample_mirror\.sha256\.fetal_planes_db/FETAL_PLANES_ZENODO\.zip'"):
        catalogue.load_config(raw, ROOT)


# --- config digest and shard override ---------------------------------------------------------


def _plan(raw: dict, basedir: Path = ROOT, ds: str = "fetal_planes_db") -> dict:
    config = catalogue.load_config(raw, basedir)
    entries = catalogue.load_catalogue(config)
    return catalogue.plan(entries[ds], config)


def test_config_digest_ignores_paths(tmp_path):
    a = _plan({"datasets": ["fetal_planes_db"]})
    b = _plan({"datasets": ["fetal_planes_db"], "output_dir": "/elsewhere/out", "resources_dir": "/elsewhere/res",
               "work_dir": "/w", "logs_dir": "/l"}, basedir=tmp_path)
    assert a["manual_dir"] != b["manual_dir"]
    assert a["config_digest"] == b["config_digest"]
    assert len(a["config_digest"]) == 64
    assert catalogue.config_digest(a) == a["config_digest"]


def test_sample_config_digest_ignores_the_mirror_location(tmp_path):
    a = _plan(config_file("sample.yaml"))
    b = _plan(config_file("sample.yaml"), basedir=tmp_path)
    assert a["sources"][0]["url"] != b["sources"][0]["url"]
    assert a["config_digest"] == b["config_digest"]


@pytest.mark.parametrize(
    "change",
    [{"options": {"fetal_planes_db": {"split": {"val_fraction": 0.2}}}},
     {"options": {"fetal_planes_db": {"split": {"dedupe": False}}}},
     {"options": {"fetal_planes_db": {"convert": {"image_mode": "L"}}}},
     {"shards": 3},
     {"png_compress_level": 6}],
    ids=["val_fraction", "dedupe", "image_mode", "shards", "png_compress_level"],
)
def test_config_digest_changes_with_what_shapes_the_output(change):
    base = _plan({"datasets": ["fetal_planes_db"]})
    changed = _plan({"datasets": ["fetal_planes_db"], **change})
    assert base["config_digest"] != changed["config_digest"]


def test_config_digest_changes_with_the_source_checksum():
    a = _plan({"datasets": ["fetal_planes_db"]})
    b = copy.deepcopy(a)
    b["sources"][0]["sha256"] = "0" * 64
    assert catalogue.config_digest(a) != catalogue.config_digest(b)


def test_top_level_shards_overrides_convert_shards():
    assert _plan({"datasets": ["fetal_planes_db"]})["convert"]["shards"] == 8
    p = _plan({"datasets": ["fetal_planes_db"], "shards": 1})
    assert p["convert"]["shards"] == 1
    assert catalogue.shard_count(p) == 1
    # it wins over a per-dataset override too
    p = _plan({"datasets": ["fetal_planes_db"], "shards": 3, "options": {"fetal_planes_db": {"convert": {"shards": 16}}}})
    assert catalogue.shard_count(p) == 3


def test_sample_config_uses_one_shard_for_every_dataset():
    config = catalogue.load_config(config_file("sample.yaml"), ROOT)
    entries = catalogue.load_catalogue(config)
    assert {ds: catalogue.shard_count(catalogue.plan(entries[ds], config)) for ds in ALL_IDS} == dict.fromkeys(ALL_IDS, 1)


# --- the package's dataset folders and a config's own entries ------------------------------------


def test_datasets_all_is_every_folder():
    config = catalogue.load_config({"datasets": "all"}, ROOT)
    catalogue.load_catalogue(config)
    assert config["datasets"] == ALL_IDS


def test_a_catalogue_folder_adds_and_overrides_entries(tmp_path):
    mine = raw_entry("african_fetal_planes")
    mine["name"] = "My copy"
    other = {**raw_entry("stare"), "id": "my_stare"}
    write_catalogue(tmp_path, {"african_fetal_planes": mine, "my_stare": other})
    entries = load_from(tmp_path, ["african_fetal_planes", "my_stare"])
    assert entries["african_fetal_planes"]["name"] == "My copy"
    assert entries["my_stare"]["module"] == "stare" and set(ALL_IDS) < set(entries)


def test_schemas_are_package_data():
    """Read through importlib.resources, so an installed wheel finds them (tests/test_wheel.py)."""
    assert catalogue.SCHEMAS.joinpath("dataset.schema.yaml").is_file()
    assert not (ROOT / "workflow" / "schemas").exists()
