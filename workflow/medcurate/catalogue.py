"""The catalogue is data: config and dataset entries, validated against JSON Schemas.

Everything a job needs about one dataset is resolved here, once, into a JSON-able *plan*.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path

import jsonschema
import yaml

from . import __version__
from .errors import CatalogueError

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
DATASET_MODULES = Path(__file__).resolve().parent / "datasets"


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


@functools.cache
def _schema(name: str) -> dict:
    """Parsed once per process: every entry and every plan is validated against it, and the
    Snakefile's parse (paid by each job and each no-op run) would otherwise re-read it 40 times."""
    return yaml.safe_load((SCHEMAS / f"{name}.schema.yaml").read_text())


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


def read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogueError(path, f"not valid YAML: {exc}") from None
    except OSError as exc:
        raise CatalogueError(path, f"cannot read: {exc.strerror}") from None


def load_config(config: dict, basedir: Path) -> dict:
    config = validate(copy.deepcopy(dict(config)), "config", "workflow config")
    config["_basedir"] = str(basedir)
    return config


def load_entry(path: Path) -> dict:
    entry = validate(read_yaml(path), "dataset", path)
    if entry["id"] != path.stem:
        raise CatalogueError(path, f"field 'id': '{entry['id']}' must equal the file name '{path.stem}'")
    if not (DATASET_MODULES / f"{entry['module']}.py").is_file():
        raise CatalogueError(path, f"field 'module': no module medcurate/datasets/{entry['module']}.py")
    return entry


def load_catalogue(config: dict) -> dict[str, dict]:
    """Every entry in the catalogue folder (all are validated, so a broken one is caught early)."""
    folder = Path(config["_basedir"]) / config["catalogue"]
    entries = {p.stem: load_entry(p) for p in sorted(folder.glob("*.yaml"))}
    missing = [d for d in config["datasets"] if d not in entries]
    if missing:
        raise CatalogueError(folder, f"no catalogue entry for {', '.join(missing)} (known: {', '.join(entries)})")
    for ds in config["curation"]:
        if ds not in entries:
            raise CatalogueError("workflow config", f"field 'curation.{ds}': no such dataset")
    return entries


def _resolve_sources(entry: dict, config: dict) -> list[dict]:
    mirror = config.get("sample_mirror")
    sources = []
    for src in entry["sources"]:
        src = {k: v for k, v in src.items() if v is not None}
        src["catalogue_url"] = src["url"]
        if mirror:
            key = f"{entry['id']}/{src['name']}"
            if key not in mirror["sha256"]:
                raise CatalogueError("workflow config", f"field 'sample_mirror.sha256': no pin for '{key}'")
            root = (Path(config["_basedir"]) / mirror["root"]).resolve()
            src = {
                "name": src["name"],
                "url": (root / key).as_uri(),
                "sha256": mirror["sha256"][key],
                "catalogue_url": src["url"],
                "served_from": "sample-mirror",
            }
        sources.append(src)
    return sources


def plan(entry: dict, config: dict) -> dict:
    """Everything the jobs of one dataset need, resolved against the config."""
    ds = entry["id"]
    curation = {**entry["curation"], **config["curation"].get(ds, {})}
    # Validate the merged curation options with the same schema as the catalogue's.
    validate({**entry, "curation": curation}, "dataset", f"workflow config (curation.{ds})")
    if config.get("shards"):
        curation["shards"] = config["shards"]
    base = Path(config["_basedir"])
    resources = Path(config["resources_dir"])
    if ds in config["manual_dirs"]:
        manual_dir = Path(config["manual_dirs"][ds])
    elif config.get("sample_mirror"):
        manual_dir = base / config["sample_mirror"]["root"] / ds / "manual"
    else:
        manual_dir = resources / "manual" / ds
    p = {
        "id": ds,
        "name": entry["name"],
        "module": entry["module"],
        "task": entry["task"],
        "modality": entry["modality"],
        "license": entry["license"],
        "citation": entry["citation"],
        "homepage": entry["homepage"],
        "access": entry["access"],
        "labels": entry["labels"],
        "mask_colours": entry.get("mask_colours"),
        "curation": curation,
        "unpack": entry["unpack"],
        "sources": _resolve_sources(entry, config),
        "manual_dir": str(manual_dir),
        "manual_pins": _manual_pins(ds, config),
        "dicom": config["dicom"],
        "png_compress_level": config["png_compress_level"],
        "download": config["download"],
        "sample": bool(config.get("sample_mirror")),
    }
    p["config_digest"] = config_digest(p)
    return p


def _manual_pins(ds: str, config: dict) -> dict[str, str]:
    """In sample mode the mirror stands in for a user's manual folder; its archives are pinned."""
    pins = (config.get("sample_mirror") or {}).get("sha256", {})
    prefix = f"{ds}/manual/"
    return {k[len(prefix):]: v for k, v in pins.items() if k.startswith(prefix)}


def config_digest(p: dict) -> str:
    """Digest of what shapes the output; paths and mirror locations are left out so runs in
    different folders (or from a mirror with the same bytes) agree."""
    keep = {k: p[k] for k in ("id", "module", "task", "labels", "mask_colours", "curation", "png_compress_level", "dicom")}
    keep["sources"] = [{k: s.get(k) for k in ("name", "sha256", "md5")} for s in p["sources"]]
    keep["medcurate"] = __version__
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def shard_count(p: dict) -> int:
    return int(p["curation"]["shards"])
