"""``medcurate``: the steps the Snakemake rules call, plus helpers for users.

Each step reads only its slice of the configuration (``--slice``, written by the workflow; see
catalogue.step_slice) and the files of the step before it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .atomic import write_text
from .errors import MedcurateError

log = logging.getLogger("medcurate")

# Settings that cannot change an output travel in the environment, not in a slice, so changing
# them re-runs nothing (set by the workflow from the config's `download:`).
DOWNLOAD_ENV = "MEDCURATE_DOWNLOAD"
DOWNLOAD_DEFAULTS = {"zenodo_api": "https://zenodo.org/api", "timeout": 60.0, "retries": 8, "backoff": 2.0,
                     "parallel": 4}


def _json_file(path: str, what: str) -> dict:
    """A JSON file a step was given, or an error naming it and what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MedcurateError(path, f"no such {what} file") from None
    except OSError as exc:
        raise MedcurateError(path, f"cannot read the {what} file ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MedcurateError(path, f"not a valid {what} file (malformed JSON: {exc})") from None
    if not isinstance(data, dict):
        raise MedcurateError(path, f"not a valid {what} file (expected a JSON object)")
    return data


def _slice(args, step: str) -> dict:
    data = _json_file(args.slice, "step slice")
    if data.get("step") != step:
        raise MedcurateError(args.slice, f"is a slice of step {data.get('step')!r}, not of {step!r}")
    return data


def _ready(path: str) -> dict:
    ready = _json_file(path, "ready record")
    if not isinstance(ready.get("root"), str) or not isinstance(ready.get("sources"), list):
        raise MedcurateError(path, "not a valid ready record (needs 'root' and 'sources')")
    return ready


def _write_json(dest: str, obj: dict) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def download_settings() -> dict:
    settings = dict(DOWNLOAD_DEFAULTS)
    if raw := os.environ.get(DOWNLOAD_ENV):
        try:
            settings.update(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise MedcurateError(DOWNLOAD_ENV, f"not valid JSON ({exc})") from None
    return settings


def cmd_fetch(args) -> None:
    from .fetch import fetch_source

    step = _slice(args, "fetch")
    source = next((s for s in step["sources"] if s["name"] == args.source), None)
    if source is None:
        raise MedcurateError(args.slice, f"no source named {args.source!r} (it has: {', '.join(s['name'] for s in step['sources'])})")
    dl = download_settings()
    record = fetch_source(source, Path(args.dest), settings=dl)
    _write_json(args.record, {**record, "path": str(Path(args.dest).resolve())})


def _records(paths: list[str]) -> list[dict]:
    records = [_json_file(r, "fetch record") for r in paths]
    for path, rec in zip(paths, records):
        if not isinstance(rec.get("path"), str) or not isinstance(rec.get("name"), str):
            raise MedcurateError(path, "not a valid fetch record (needs 'name' and 'path')")
    return records


@contextlib.contextmanager
def _drop_damaged_downloads(record_paths: list[str], records: list[dict]):
    """A download that turns out truncated or corrupt (or an error page) when opened is not cached
    for good: without a checksum it is dropped, so the next run downloads it again. A hostile
    archive (UnsafeArchiveError) is not: the same bytes would be refused again."""
    from .errors import ArchiveError
    from .fetch import forget

    try:
        yield
    except ArchiveError as exc:
        archive = Path((exc.path or "").split("!")[0])
        for rec_path, rec in zip(record_paths, records):
            if Path(rec["path"]).name == archive.name:
                if forget(Path(rec["path"]), exc.reason, record=Path(rec_path)):
                    raise ArchiveError(exc.path, f"{exc.reason}; the download was dropped, the next run downloads it again") from None
                raise ArchiveError(exc.path, f"{exc.reason}; the download matched its checksum, so the published file "
                                             "itself is damaged: report it to the publisher") from None
        raise


def cmd_unpack(args) -> None:
    from .unpack import unpack

    step = _slice(args, "unpack")
    paths = [r for r in args.records if r]
    records = _records(paths)
    with _drop_damaged_downloads(paths, records):
        # a folder source (TCIA, KiTS19, PhysioNet) is linked, as a placed folder is
        folders = [Path(r["path"]) for r in records if r.get("kind") == "folder"]
        unpack([Path(r["path"]) for r in records if r.get("kind") != "folder"], Path(args.dest), limits=_limits(step),
               nested=step["unpack"]["nested"], fingerprints={r["name"]: r["sha256"] for r in records}, links=folders,
               threads=args.threads)
    sources = [{k: v for k, v in r.items() if k != "path"} for r in records]
    _write_json(args.out, {"root": str(Path(args.dest).resolve()), "sources": sources})


def cmd_check_manual(args) -> None:
    from .manual import prepare

    step = _slice(args, "check_manual")
    paths = [r for r in args.records or [] if r]
    records = _records(paths)
    with _drop_damaged_downloads(paths, records):
        ready = prepare(step, records, Path(args.dest), _limits(step), threads=args.threads)
    _write_json(args.out, ready)


def _limits(step: dict):
    from .unpack import Limits

    return Limits(**{k: step["unpack"][k] for k in ("max_bytes", "max_ratio") if k in step["unpack"]})


def cmd_convert(args) -> None:
    from .convert import convert_shard

    if not 0 <= args.shard < args.shards:
        raise MedcurateError(None, f"--shard {args.shard} is outside 0..{args.shards - 1} (--shards {args.shards})")
    step = _slice(args, "convert")
    convert_shard(Path(_ready(args.ready)["root"]), step, args.shard, args.shards, Path(args.out))


def cmd_clean(args) -> None:
    from .clean import clean_shard

    clean_shard(Path(args.converted), _slice(args, "clean"), Path(args.out))


def cmd_select(args) -> None:
    from .curation import select_step

    select_step([Path(t) for t in args.tiers], _slice(args, "select"), Path(args.out))


def cmd_split(args) -> None:
    from .splits import split_step

    split_step(Path(args.selected), _slice(args, "split"), [Path(t) for t in args.tiers], Path(args.out),
               [Path(t) for t in args.source_split])


def cmd_publish(args) -> None:
    from .publish import publish

    step = _slice(args, "publish")
    ready = _ready(args.ready)
    publish(step, [Path(t) for t in args.tiers], Path(args.split), Path(args.out), ready["sources"], args.threads)


def cmd_reclaim(args) -> None:
    """Remove finished tiers; say how much disk that frees (files results/ still links stay)."""
    import shutil

    freed = shared = 0
    for path in map(Path, args.paths):
        for f in ([path] if path.is_file() else path.rglob("*") if path.is_dir() else []):
            if f.is_file() and not f.is_symlink():
                st = f.lstat()
                freed, shared = (freed + st.st_size, shared) if st.st_nlink == 1 else (freed, shared + st.st_size)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    print(f"reclaimed {freed / 1e6:.1f} MB; {shared / 1e6:.1f} MB more stay as the results' hard links")


def cmd_export(args) -> None:
    from .exports import export

    options = {k: v for k, v in (("label", args.label), ("dataset_number", args.number)) if v is not None}
    print(export(args.kind, args.results, args.out, **options))


def cmd_samples(args) -> None:
    from .samples import build, write_pins

    pins = build(Path(args.out), args.datasets or None)
    for key, digest in pins.items():
        print(f"{digest}  {key}")
    if not args.no_pins:
        for path in write_pins(pins):
            print(f"pins written: {path}", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medcurate", description=__doc__)
    p.add_argument("--version", action="version", version=f"medcurate {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def step(name: str, func, help: str, *options: tuple[str, dict]):
        s = sub.add_parser(name, help=help)
        s.add_argument("--slice", required=True, help="the step's slice of the configuration (JSON, written by the workflow)")
        for flag, kw in options:
            s.add_argument(flag, **kw)
        s.set_defaults(func=func)

    required = {"required": True}
    step("fetch", cmd_fetch, "download one source, resumably, and verify it",
         ("--source", required), ("--dest", required), ("--record", required))
    threads = ("--threads", {"type": int, "default": 1, "help": "archives (or runs of one zip's members) extracted at once"})
    step("unpack", cmd_unpack, "safely extract a dataset's downloads (nested archives too)",
         ("--records", {"nargs": "+", "required": True}), ("--dest", required), ("--out", required), threads)
    step("check-manual", cmd_check_manual, "check a gated dataset placed by hand and assemble its root",
         ("--records", {"nargs": "*", "help": "fetch records of the sources downloaded for it"}),
         ("--dest", required), ("--out", required), threads)
    step("convert", cmd_convert, "convert one shard of a dataset (decode, raw label maps)",
         ("--ready", required), ("--shard", {"type": int, "required": True}),
         ("--shards", {"type": int, "required": True}), ("--out", required))
    step("clean", cmd_clean, "clean the masks of one converted shard", ("--converted", required), ("--out", required))
    step("select", cmd_select, "apply the curated-subset rules to a dataset's tables",
         ("--tiers", {"nargs": "+", "required": True}), ("--out", required))
    step("split", cmd_split, "duplicates, near-duplicates, splits and the leakage check",
         ("--selected", required), ("--tiers", {"nargs": "*", "default": [], "help": "tiers with images and masks, for the near-duplicate check"}),
         ("--source-split", {"nargs": "*", "default": [], "help": "split folder of the slice's split_source, if any"}),
         ("--out", required))
    step("publish", cmd_publish, "write the results folder of the output contract",
         ("--ready", required), ("--tiers", {"nargs": "+", "required": True}), ("--split", required), ("--out", required),
         ("--threads", {"type": int, "default": 1, "help": "QC tiles decoded at once"}))

    s = sub.add_parser("reclaim", help="remove finished tiers (unpacked, converted, cleaned) and say what that frees")
    s.add_argument("paths", nargs="*")
    s.set_defaults(func=cmd_reclaim)

    s = sub.add_parser("plan", help="what a run will download, unpack and write, where, and whether it fits (docs/plan.md)")
    s.add_argument("--configfile", action="append", help="config files layered over config/config.yaml, as snakemake's")
    s.add_argument("--config", nargs="+", metavar="KEY=VALUE", help="overrides, as snakemake's --config (YAML values)")
    s.add_argument("--online", action="store_true", help="ask each server for the sizes the catalogue does not pin (HEAD)")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds per HEAD request (default 10)")
    s.set_defaults(func=lambda args: __import__("medcurate.plan").plan.cmd_plan(args))

    s = sub.add_parser("export", help="write one export of a results folder (hf, imagefolder, nnunet, monai, webdataset, croissant)")
    s.add_argument("kind", choices=["hf", "imagefolder", "nnunet", "monai", "webdataset", "croissant"])
    s.add_argument("results", help="a results folder, e.g. results/drive")
    s.add_argument("--out", help="default: exports/<dataset>/<kind> beside the results folder")
    s.add_argument("--label", help="imagefolder: the label column (default: the manifest's first)")
    s.add_argument("--number", type=int, help="nnunet: the DatasetNNN number (default: stable, from the id)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("samples", help="write the sample mirror and its pins (each dataset folder's sample.sha256)")
    s.add_argument("--out", default="workflow/sample-mirror")
    s.add_argument("--no-pins", action="store_true", help="only print the pins (a mirror elsewhere)")
    s.add_argument("datasets", nargs="*")
    s.set_defaults(func=cmd_samples)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args) or 0  # `plan` returns 2 when a dataset would not fit
    except MedcurateError as exc:
        log.error("%s", exc)
        print(f"medcurate {args.command}: error: {exc}", file=sys.stderr)
        return 1
