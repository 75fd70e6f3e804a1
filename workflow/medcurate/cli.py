"""``medcurate``: the steps the Snakemake rules call, plus helpers for users."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .atomic import write_text
from .errors import MedcurateError

log = logging.getLogger("medcurate")


def _plan(path: str) -> dict:
    return json.loads(Path(path).read_text())


def _write_json(dest: str, obj: dict) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def cmd_fetch(args) -> None:
    from .fetch import fetch

    plan = _plan(args.plan)
    if plan["access"]["mode"] == "manual":
        from .manual import placed_entries

        placed_entries(plan)  # nothing placed yet: say what to request before downloading the rest
    source = next(s for s in plan["sources"] if s["name"] == args.source)
    dl = plan["download"]
    record = fetch(source, Path(args.dest), zenodo_api=dl["zenodo_api"], timeout=dl["timeout"],
                   retries=dl["retries"], backoff=dl["backoff"])
    _write_json(args.record, {**record, "path": str(Path(args.dest).resolve())})


def cmd_unpack(args) -> None:
    from .unpack import unpack

    plan = _plan(args.plan)
    records = [json.loads(Path(r).read_text()) for r in args.records]
    unpack([Path(r["path"]) for r in records], Path(args.dest), limits=_limits(plan), nested=plan["unpack"]["nested"],
           fingerprints={r["name"]: r["sha256"] for r in records})
    sources = [{k: v for k, v in r.items() if k != "path"} for r in records]
    _write_json(args.out, {"root": str(Path(args.dest).resolve()), "sources": sources})


def cmd_check_manual(args) -> None:
    from .manual import prepare

    plan = _plan(args.plan)
    records = [json.loads(Path(r).read_text()) for r in args.records or [] if r]
    _write_json(args.out, prepare(plan, records, Path(args.dest), _limits(plan)))


def _limits(plan: dict):
    from .unpack import Limits

    return Limits(**{k: plan["unpack"][k] for k in ("max_bytes", "max_ratio") if k in plan["unpack"]})


def cmd_convert(args) -> None:
    from .convert import convert_shard

    ready = json.loads(Path(args.ready).read_text())
    convert_shard(Path(ready["root"]), _plan(args.plan), args.shard, args.shards, Path(args.out))


def cmd_gather(args) -> None:
    from .gather import gather

    ready = json.loads(Path(args.ready).read_text())
    gather(_plan(args.plan), [Path(s) for s in args.shard_dirs], Path(args.out), ready["sources"])


def cmd_samples(args) -> None:
    from .samples import build

    pins = build(Path(args.out), args.datasets or None)
    print("sample_mirror:\n  sha256:")
    for key, digest in pins.items():
        print(f'    "{key}": {digest}')


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medcurate", description=__doc__)
    p.add_argument("--version", action="version", version=f"medcurate {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("fetch", help="download one source, resumably, and verify it")
    s.add_argument("--plan", required=True)
    s.add_argument("--source", required=True)
    s.add_argument("--dest", required=True)
    s.add_argument("--record", required=True)
    s.set_defaults(func=cmd_fetch)

    s = sub.add_parser("unpack", help="safely extract a dataset's downloads (nested archives too)")
    s.add_argument("--plan", required=True)
    s.add_argument("--records", nargs="+", required=True)
    s.add_argument("--dest", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_unpack)

    s = sub.add_parser("check-manual", help="check a gated dataset placed by hand and assemble its root")
    s.add_argument("--plan", required=True)
    s.add_argument("--records", nargs="*", help="fetch records of the sources downloaded for it")
    s.add_argument("--dest", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_check_manual)

    s = sub.add_parser("convert", help="convert one shard of a dataset")
    s.add_argument("--plan", required=True)
    s.add_argument("--ready", required=True)
    s.add_argument("--shard", type=int, required=True)
    s.add_argument("--shards", type=int, required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("gather", help="merge shards into the output contract")
    s.add_argument("--plan", required=True)
    s.add_argument("--ready", required=True)
    s.add_argument("--shard-dirs", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_gather)

    s = sub.add_parser("samples", help="write the sample mirror and print its sha256 pins")
    s.add_argument("--out", default="workflow/sample-mirror")
    s.add_argument("datasets", nargs="*")
    s.set_defaults(func=cmd_samples)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except MedcurateError as exc:
        log.error("%s", exc)
        print(f"medcurate {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0
