"""The catalogue is data: config and dataset entries, validated against JSON Schemas.

Everything a job needs about one dataset is resolved here, once, into a JSON-able *plan*.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path

import re
from importlib import resources

import jsonschema
import yaml

from . import __version__
from .errors import CatalogueError

# Package data (importlib.resources), so an installed wheel finds them as the checkout does.
SCHEMAS = resources.files(__package__) / "schemas"
DATASETS = resources.files(__package__) / "datasets"


# --- the dataset folders (medcurate/datasets/<id>/; datasets/__init__.py says what each holds) ---
ENTRY = "dataset.yaml"
PINS = "sample.sha256"


def folder(ds: str):
    """The dataset's folder (package data: a Path in a checkout or an installed wheel)."""
    return DATASETS / ds


@functools.cache
def ids() -> tuple[str, ...]:
    """Every dataset: the folders here that hold a catalogue entry."""
    return tuple(sorted(p.name for p in DATASETS.iterdir() if (p / ENTRY).is_file()))


def sample_pins(ds: str) -> dict[str, str]:
    """<file below the dataset's mirror folder> -> sha256, from its ``sample.sha256`` (the
    ``sha256sum`` format, so ``sha256sum -c`` checks a mirror folder against it)."""
    path = folder(ds) / PINS
    if not path.is_file():
        return {}
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise CatalogueError(path, f"not a sha256sum line: {line!r}")
        pins[name] = digest
    return pins


def _with_defaults(cls):
    """A validator that also fills in ``default`` values (the jsonschema FAQ recipe)."""
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


# libyaml's parser where PyYAML was built with it (its wheels are): the Snakefile parses every
# catalogue entry on each start, and the pure-Python parser took a third of a no-op run.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str):
    return yaml.load(text, Loader=_LOADER)  # a safe loader (libyaml or Python)


@functools.cache
def _schema(name: str) -> dict:
    """Parsed once per process: every entry and every plan is validated against it, and the
    Snakefile's parse (paid by each job and each no-op run) would otherwise re-read it 40 times."""
    return load_yaml((SCHEMAS / f"{name}.schema.yaml").read_text())


def _field(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(instance: dict, schema_name: str, source: str | Path) -> dict:
    """Validate (filling defaults) or raise CatalogueError naming the file and the field."""
    if not isinstance(instance, dict):
        raise CatalogueError(source, "expected a YAML mapping at the top level")
    errors = sorted(_Validator(_schema(schema_name)).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"field '{_field(e)}': {e.message}" for e in errors[:10]]
        raise CatalogueError(source, "invalid " + schema_name + " entry:\n  " + "\n  ".join(lines))
    return instance


def read_yaml(path) -> dict:
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogueError(path, f"not valid YAML: {exc}") from None
    except OSError as exc:
        raise CatalogueError(path, f"cannot read: {exc.strerror}") from None


# Options by the step that reads them; the old mixed `curation:` keys map here, for the message
# that tells a user with an old config where each key went.
STEPS = ("convert", "clean", "select", "split", "qc")
MOVED = {
    "shards": "convert", "image_mode": "convert", "unknown_colour": "convert", "point_radius": "convert",
    "mask_size_mismatch": "convert", "annotator": "convert", "slices": "convert",
    "min_component_area": "clean", "fill_holes": "clean",
    "empty_mask": "select", "allowed_roi_types": "select", "exclude_flags": "select", "crude_shapes": "select",
    "area_fraction": "select", "max_components": "select",
    "val_fraction": "split", "test_fraction": "split", "dedupe": "split", "split_conflicts": "split",
    "near_duplicates": "split", "qc_samples": "qc",
}


def load_config(config: dict, basedir: Path) -> dict:
    config = copy.deepcopy(dict(config))
    if "curation" in config:
        old = config["curation"] or {}
        moves = [f"'curation.{ds}.{k}' is now 'options.{ds}.{MOVED.get(k, '?')}.{k}'"
                 for ds, keys in old.items() for k in (keys or {})]
        raise CatalogueError("workflow config", "field 'curation' was split by step into 'options: {<dataset>: "
                             "{convert|clean|select|split|qc: {...}}}' (config/README.md):\n  " + "\n  ".join(moves or ["(empty)"]))
    config = validate(config, "config", "workflow config")
    config["_basedir"] = str(basedir)
    return config


def load_entry(path, ds: str | None = None) -> dict:
    """One entry: ``datasets/<id>/dataset.yaml`` in the package (``ds`` = the folder's name), or
    ``<id>.yaml`` in a folder given by the config's ``catalogue``."""
    ds = ds or Path(path.name).stem
    raw = read_yaml(path)
    if isinstance(raw, dict) and "curation" in raw:
        moves = [f"'curation.{k}' is now '{MOVED.get(k, '?')}.{k}'" for k in (raw["curation"] or {})]
        raise CatalogueError(path, "field 'curation' was split by the step that reads each option "
                                   "(convert, clean, select, split, qc):\n  " + "\n  ".join(moves or ["(empty)"]))
    entry = validate(raw, "dataset", path)
    if entry["id"] != ds:
        raise CatalogueError(path, f"field 'id': '{entry['id']}' must equal the {'folder' if path.name == ENTRY else 'file'} name '{ds}'")
    if not (folder(entry["module"]) / "__init__.py").is_file():
        raise CatalogueError(path, f"field 'module': no module medcurate/datasets/{entry['module']}/__init__.py")
    return entry


def load_catalogue(config: dict) -> dict[str, dict]:
    """Every entry (all are validated, so a broken one is caught early): the package's dataset
    folders, then ``<id>.yaml`` files of the config's ``catalogue`` folder, if any (a user's own
    entries, or overrides of the package's). ``datasets: all`` becomes every id."""
    entries = {ds: load_entry(folder(ds) / ENTRY, ds) for ds in ids()}
    where = "medcurate/datasets"
    if config.get("catalogue"):
        extra = Path(config["_basedir"]) / config["catalogue"]
        entries.update({p.stem: load_entry(p) for p in sorted(extra.glob("*.yaml"))})
        where = str(extra)
    if config["datasets"] == "all":
        config["datasets"] = list(entries)
    missing = [d for d in config["datasets"] if d not in entries]
    if missing:
        raise CatalogueError(where, f"no catalogue entry for {', '.join(missing)} (known: {', '.join(entries)})")
    for key in ("options", "manual_dirs"):
        for ds in config[key]:
            if ds not in entries:
                raise CatalogueError("workflow config", f"field '{key}.{ds}': no such dataset (known: {', '.join(entries)})")
    return entries


# Source types that publish a folder of many files (medcurate/fetch/sources.py), and the one behind an account
FOLDER_SERVICES = ("tcia", "kits19", "physionet")
SERVICES = (*FOLDER_SERVICES, "kaggle")


def _route(entry: dict, config: dict) -> tuple[dict, list[dict]]:
    """The access route a plan takes, and the sources it fetches. An entry fetched from a service
    (TCIA, KiTS19, PhysioNet, Kaggle) that also describes a manual route takes that route when the
    user placed the data (manual_dirs), in sample mode (the mirror holds a placed release), or,
    for mode 'token', when no credential for the service is configured."""
    access = dict(entry["access"])
    services = [s for s in entry["sources"] if any(k in s for k in SERVICES)]
    if not services or access["mode"] == "manual":
        return access, entry["sources"]
    manual = "expected" in access and (
        entry["id"] in config["manual_dirs"] or bool(config.get("sample_mirror"))
        or (access["mode"] == "token" and not _has_credential(services, config)))
    if manual:
        return {**access, "mode": "manual"}, [s for s in entry["sources"] if s not in services]
    return {**access, "mode": "open"}, entry["sources"]


def _has_credential(services: list[dict], config: dict) -> bool:
    from . import secrets

    found = secrets.load(secrets.secrets_file(config.get("secrets_file")))
    return all(found.of(next(k for k in SERVICES if k in s)) is not None for s in services)


def _resolve_sources(entry: dict, config: dict, subset: int | None = None) -> list[dict]:
    mirror = config.get("sample_mirror")
    folders = [s for s in entry["sources"] if any(k in s for k in FOLDER_SERVICES)]
    if subset is not None and not folders:
        raise CatalogueError("workflow config", f"field 'options.{entry['id']}.fetch.subset': {entry['id']} has no "
                                                "source that can be cut to its first subjects here (a TCIA, KiTS19 "
                                                "or PhysioNet source; the manual route and the sample mirror have none)")
    sources = []
    for src in entry["sources"]:
        # approx_size is the plan's (medcurate/plan.py), not a download's: kept out of every slice
        src = {k: v for k, v in src.items() if v is not None and k != "approx_size"}
        if "url" not in src:  # a service source: fetched by its type, never from the sample mirror
            if subset is not None and src["name"] in {f["name"] for f in folders}:  # src lost approx_size
                src["subset"] = subset
            sources.append(src)
            continue
        src["catalogue_url"] = src["url"]
        if mirror:
            key = f"{entry['id']}/{src['name']}"
            pins = mirror_pins(config)
            if key not in pins:
                raise CatalogueError("workflow config", f"no sample-mirror pin for '{key}' (field 'sample_mirror.sha256', "
                                     f"or medcurate/datasets/{entry['id']}/{PINS}: run `medcurate samples {entry['id']}`)")
            root = (Path(config["_basedir"]) / mirror["root"]).resolve()
            src = {
                "name": src["name"],
                "url": (root / key).as_uri(),
                "sha256": pins[key],
                "catalogue_url": src["url"],
                "served_from": "sample-mirror",
            }
        sources.append(src)
    return sources


def plan(entry: dict, config: dict) -> dict:
    """Everything the jobs of one dataset need, resolved against the config (step_slice cuts it)."""
    ds = entry["id"]
    overrides = config["options"].get(ds, {})
    options = {step: {**entry[step], **overrides.get(step, {})} for step in STEPS}
    # Validate the merged options with the same schema as the catalogue's.
    validate({**entry, **options}, "dataset", f"workflow config (options.{ds})")
    if config.get("shards"):
        options["convert"]["shards"] = config["shards"]
    # Resolved here, so the split slice records it: the built dataset whose split table this
    # dataset's shared patients follow (the split rule takes that table as input), or None.
    shared = options["split"].get("shared_patients")
    options["split"]["split_source"] = (shared["dataset"] if shared and options["split"]["follow_shared_split"]
                                        and shared["dataset"] in config["datasets"] and shared["dataset"] != ds else None)
    base = Path(config["_basedir"])
    resources = Path(config["resources_dir"])
    if ds in config["manual_dirs"]:
        manual_dir = Path(config["manual_dirs"][ds])
    elif config.get("sample_mirror"):
        manual_dir = base / config["sample_mirror"]["root"] / ds / "manual"
    else:
        manual_dir = resources / "manual" / ds
    access, entry_sources = _route(entry, config)
    p = {
        "id": ds,
        "name": entry["name"],
        "module": entry["module"],
        "task": entry["task"],
        "modality": entry["modality"],
        "license": entry["license"],
        "citation": entry["citation"],
        "homepage": entry["homepage"],
        "access": access,
        "labels": entry["labels"],
        "mask_colours": entry.get("mask_colours"),
        **options,
        "unpack": entry["unpack"],
        "sources": _resolve_sources({**entry, "sources": entry_sources}, config,
                                    overrides.get("fetch", {}).get("subset")),
        "manual_dir": str(manual_dir),
        "manual_pins": _manual_pins(ds, config),
        "dicom": config["dicom"],
        "png_compress_level": config["png_compress_level"],
        "sample": bool(config.get("sample_mirror")),
    }
    p["config_digest"] = config_digest(p)
    return p


# What each step reads of a plan, and the package modules it runs (their code is fingerprinted).
_SLICES = {
    "fetch": ("sources",),
    "unpack": ("unpack",),
    "check_manual": ("name", "access", "unpack", "manual_dir", "manual_pins"),
    "convert": ("name", "module", "task", "modality", "labels", "mask_colours", "convert", "dicom", "png_compress_level"),
    "clean": ("task", "labels", "clean", "png_compress_level"),
    "select": ("task", "labels", "select"),  # labels: the uncertain/blank policy acts on label columns
    "split": ("task", "labels", "split"),
    "publish": ("name", "module", "task", "modality", "license", "citation", "homepage", "labels", "sources",
                *STEPS, "dicom", "png_compress_level", "config_digest"),
}


# The package modules a task kind adds to the convert and publish steps' code.
TASK_MODULES = {"volume_segmentation": ("volumes",), "detection": ("boxes",), "wsi_tiling": ("wsi", "formats.asap")}
# Tasks whose cases carry 2-D label maps (the clean step runs for them).
MASK_TASKS = ("segmentation", "wsi_tiling")


def step_code(p: dict, step: str) -> tuple[str, ...]:
    modules = {"fetch": ("fetch",), "unpack": ("unpack",), "check_manual": ("manual",), "clean": ("clean",),
               "select": ("curation",), "split": ("splits",), "publish": ("publish",)}.get(step)
    volume = TASK_MODULES.get(p["task"], ())
    if step == "convert":
        modules = ("convert", f"datasets.{p['module']}", *volume)
    elif step == "publish":
        modules += volume
    elif step == "split" and p["split"].get("near_duplicates") is not None:
        modules += ("neardup",)
    return modules


def step_slice(p: dict, step: str, source: str | None = None) -> dict:
    """The part of a plan one step reads, plus the fingerprint of its code: the step's parameter,
    so a change re-runs exactly the steps it can affect (Snakemake's params trigger)."""
    from .fingerprint import code_digest

    out = {"step": step, "id": p["id"], **{k: p[k] for k in _SLICES[step]}}
    if step == "fetch":
        out["sources"] = [s for s in p["sources"] if s["name"] == source]
    out["code"] = code_digest(*step_code(p, step))
    return out


def mirror_pins(config: dict) -> dict[str, str]:
    """'<id>/<file>' -> sha256 of the sample mirror: the config's ``sample_mirror.sha256`` if it
    gives them (another mirror), else the pins ``medcurate samples`` wrote into each dataset folder."""
    mirror = config.get("sample_mirror") or {}
    if mirror.get("sha256") is not None:
        return mirror["sha256"]
    return {f"{ds}/{name}": digest for ds in ids() for name, digest in sample_pins(ds).items()}


def _manual_pins(ds: str, config: dict) -> dict[str, str]:
    """In sample mode the mirror stands in for a user's manual folder; its archives are pinned."""
    pins = mirror_pins(config) if config.get("sample_mirror") else {}
    prefix = f"{ds}/manual/"
    return {k[len(prefix):]: v for k, v in pins.items() if k.startswith(prefix)}


def config_digest(p: dict) -> str:
    """Digest of what shapes the output; paths and mirror locations are left out so runs in
    different folders (or from a mirror with the same bytes) agree."""
    keep = {k: p[k] for k in ("id", "module", "task", "labels", "mask_colours", *STEPS, "png_compress_level", "dicom")}
    keep["sources"] = [{k: s.get(k) for k in ("name", "sha256", "md5")} | ({"subset": s["subset"]} if "subset" in s else {})
                       for s in p["sources"]]
    keep["medcurate"] = __version__
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def shard_count(p: dict) -> int:
    return int(p["convert"]["shards"])
