"""What a run will cost before it starts: per dataset, how it is obtained, how many bytes come in,
what unpacking and converting make of them, where each tier goes and whether it fits.

``medcurate plan`` prints the table; the workflow's main process calls :func:`refusals` before its
first job, so a dataset that cannot fit is refused before any byte is downloaded. Figures are
*known* (a file that is here, a size the catalogue pins, a server's Content-Length) or *estimated*
(a publisher's approximate size, a per-dataset ratio), and every figure says which.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MedcurateError
from .sizes import Figure, human, listed_bytes, local_path, source_size, tree_bytes

# The workflow's check is on unless the config says `space_check: false` or this variable is 0/false.
SPACE_ENV = "MEDCURATE_SPACE_CHECK"
# Used where a catalogue entry records no ratio (an entry without a `disk:` block).
DEFAULT_RATIOS = {"unpacked_ratio": 1.1, "work_ratio": 1.5}
# Tables, QC montage and SHA256SUMS beside the results' hard links, per byte of the work tiers
# (measured: 5.5 MB on 2.2 GB at real scale; README "Disk, per tier"): 1 % keeps a margin, plus a
# fixed part for the QC montage and tables of a small dataset (the sample's are 20-30 kB).
RESULTS_EXTRA = 0.01
RESULTS_FIXED = 1_000_000
TIERS = ("download", "unpacked", "work", "results")
FOLDER_OF = {"download": "resources_dir", "unpacked": "resources_dir", "work": "work_dir", "results": "output_dir"}


@dataclass
class Estimate:
    id: str
    route: str
    files: int
    sources: list[tuple[str, Figure, bool]]  # name, size, already downloaded
    download: Figure
    placed: Figure | None
    unpacked: Figure
    work: Figure
    results: Figure
    built: bool
    notes: list[str] = field(default_factory=list)


# --- One dataset -----------------------------------------------------------------------------
def route_of(plan: dict) -> str:
    access = plan["access"]
    zenodo = any(s.get("zenodo") for s in plan["sources"])
    if plan.get("sample"):
        how = "sample mirror"
    elif access["mode"] == "open":
        how = "Zenodo" if zenodo else "open URL"
    else:
        how = "gated"
    if access["mode"] == "manual":
        placed = ", ".join(e["path"] + ("/" if e.get("kind") == "dir" else "") for e in access["expected"])
        how += f" (placed: {placed})" + (f" + {len(plan['sources'])} download(s)" if plan["sources"] else "")
    else:
        how += f" ({len(plan['sources'])} download(s))"
    return how


def estimate(plan: dict, entry: dict, dirs: dict[str, Path], online: bool = False, timeout: float = 10.0,
             zenodo_api: str = "https://zenodo.org/api", tiers: Iterable[str] = TIERS) -> Estimate:
    """``tiers``: those whose figures are wanted (the rest say "not estimated"): a re-build that
    only publishes walks the results folder, not also the unpacked and work trees."""
    ds, res, work, out = plan["id"], dirs["resources_dir"], dirs["work_dir"], dirs["output_dir"]
    approx = {s["name"]: s.get("approx_size") for s in entry["sources"]}
    disk = {**DEFAULT_RATIOS, **(entry.get("disk") or {})}
    notes = [] if entry.get("disk") else ["no disk ratios in the catalogue entry: default ratios"]
    nested = plan["unpack"].get("nested", True)

    sources, local_files = [], []
    for src in plan["sources"]:
        cached = res / "downloads" / ds / src["name"]
        fig = source_size({**src, "approx_size": approx.get(src["name"])}, cached, online, timeout, zenodo_api)
        sources.append((src["name"], fig, cached.is_file()))
        local = cached if cached.is_file() else local_path(src.get("url") or "")
        local_files.append((local, src["name"]) if local is not None and local.is_file() else (None, src["name"]))

    download = Figure.total(fig for _, fig, _ in sources)
    if download.bytes is None and disk.get("download") is not None:
        download = Figure(int(disk["download"]), "publisher (approx., all files)", False)
    placed = None
    files = len(plan["sources"])
    if plan["access"]["mode"] == "manual":
        folder = Path(plan["manual_dir"])
        try:
            n, count = tree_bytes(folder, follow=True) if folder.is_dir() else (None, 0)
        except MedcurateError as exc:  # a link loop: check_manual names it; here it is not a size
            n, count = None, 0
            notes.append(f"placed folder not measured: {exc}")
        if n is not None:
            placed = Figure(n, "placed")
            files += count
            # placed archives are unpacked into resources/; placed folders are linked, not copied
            from .unpack import is_archive
            for p in sorted(folder.iterdir()):
                if p.is_file() and is_archive(p.name):
                    local_files.append((p, p.name))
        elif disk.get("placed") is not None:
            placed = Figure(int(disk["placed"]), "publisher (approx.)", False)
            files += len(plan["access"]["expected"])
            local_files.append((None, "placed"))
        else:
            placed = Figure(None, "unknown", False)

    # After unpacking: the previous run's tree, else the archives' listings, else a ratio.
    @functools.cache
    def unpacked_figure() -> Figure:
        unpacked_dir = res / "unpacked" / ds
        if (res / "ready" / f"{ds}.json").is_file() and unpacked_dir.is_dir():
            return Figure(tree_bytes(unpacked_dir)[0], "measured (previous run)")
        sizes = [listed_bytes(p, name, nested) if p is not None else None for p, name in local_files]
        if local_files and all(s is not None for s in sizes):
            return Figure(sum(sizes), "listed from the archives")
        base = download if placed is None else Figure.total([download, placed])
        return _scaled(base, disk["unpacked_ratio"], "unpacked_ratio")

    # Converted and cleaned tiers, and what results/ adds: a finished build's, else ratios.
    done = (out / ds / "SHA256SUMS").is_file() and (work / ds).is_dir()

    @functools.cache
    def work_figure() -> Figure:
        if done:
            return Figure(tree_bytes(work / ds)[0], "measured (previous run)")
        return _scaled(unpacked_figure(), disk["work_ratio"], "work_ratio")

    def results_figure() -> Figure:
        if done:
            return Figure(tree_bytes(out / ds, shared=False)[0], "measured (previous run)")
        same = _device(work) == _device(out)
        r = _scaled(work_figure(), RESULTS_EXTRA if same else 1 + RESULTS_EXTRA,
                    "tables beside hard links" if same else "copies: output_dir is on another file system")
        if r.bytes is not None:
            r.bytes += RESULTS_FIXED
            r.how = r.how.replace(")", f" + {human(RESULTS_FIXED)})", 1)
        return r

    tiers = set(tiers)
    skipped = Figure(None, "not estimated", False)
    return Estimate(ds, route_of(plan), files, sources, download, placed,
                    unpacked_figure() if "unpacked" in tiers else skipped,
                    work_figure() if "work" in tiers else skipped,
                    results_figure() if "results" in tiers else skipped, done, notes)


def _scaled(fig: Figure, ratio: float, what: str) -> Figure:
    if fig.bytes is None:
        return Figure(None, "unknown", False)
    return Figure(int(fig.bytes * ratio), f"estimated (x{ratio:g}, {what})", False)


# --- File systems ------------------------------------------------------------------------------
def _existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def _device(path: Path) -> int:
    return os.stat(_existing(path)).st_dev


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(_existing(path)).free


def still_to_write(est: Estimate, dirs: dict[str, Path], running: set[str] | None = None,
                   sources: set[str] | None = None) -> dict[str, int]:
    """Bytes each tier still has to write: ``running`` names the tiers whose jobs will run (the
    workflow knows from its DAG; by default, those whose outputs are missing) and ``sources`` the
    downloads that will run (default: those not yet downloaded). A download resumes from its
    ``.part``; an unknown figure counts as 0 (and is said so by the plan)."""
    ds, res = est.id, dirs["resources_dir"]
    if running is None:
        running = {t for t, missing in (
            ("download", True),
            ("unpacked", not (res / "ready" / f"{ds}.json").is_file()),
            ("work", not est.built), ("results", not est.built)) if missing}
    need = dict.fromkeys(TIERS, 0)
    if "download" in running:
        for name, fig, cached in est.sources:
            if cached or (sources is not None and name not in sources):
                continue
            part = res / "downloads" / ds / f"{name}.part"
            have = part.stat().st_size if part.is_file() else 0
            need["download"] += max(0, (fig.bytes or 0) - have)
        if not any(fig.bytes for _, fig, _ in est.sources) and not any(c for *_, c in est.sources):
            need["download"] = est.download.bytes or 0  # only a total is known (catalogue disk.download)
    for tier in ("unpacked", "work", "results"):
        if tier in running:
            need[tier] = getattr(est, tier).bytes or 0
    return need


@dataclass
class Shortfall:
    dataset: str
    folders: list[tuple[str, Path]]
    needed: int
    free: int
    parts: dict[str, int]

    def message(self) -> str:
        where = " and ".join(f"{key} '{path}'" for key, path in self.folders)
        same = " (one file system)" if len(self.folders) > 1 else ""
        parts = ", ".join(f"{t} {human(n)}" for t, n in self.parts.items() if n)
        return (f"{self.dataset}: does not fit: {where}{same} needs {human(self.needed)} more ({parts}) "
                f"but has {human(self.free)} free")


def shortfalls(needs: Iterable[tuple[str, dict[str, int]]], dirs: dict[str, Path],
               free: dict[int, int] | None = None) -> list[Shortfall]:
    """Datasets in order, each admitted if its bytes fit beside those admitted before it on every
    file system it writes to (folders on one device counted together)."""
    devices = {key: _device(dirs[key]) for key in ("resources_dir", "work_dir", "output_dir")}
    free = dict(free) if free is not None else {}
    for key, dev in devices.items():
        free.setdefault(dev, free_bytes(dirs[key]))
    out = []
    for ds, need in needs:
        per_dev: dict[int, dict[str, int]] = {}
        for tier, n in need.items():
            per_dev.setdefault(devices[FOLDER_OF[tier]], {}).setdefault(tier, 0)
            per_dev[devices[FOLDER_OF[tier]]][tier] += n
        short = [(dev, parts) for dev, parts in per_dev.items() if sum(parts.values()) > free[dev]]
        for dev, parts in short:
            folders = [(k, dirs[k]) for k in ("resources_dir", "work_dir", "output_dir")
                       if devices[k] == dev and any(FOLDER_OF[t] == k for t in parts if parts[t])]
            out.append(Shortfall(ds, folders, sum(parts.values()), free[dev], parts))
        if not short:
            for dev, parts in per_dev.items():
                free[dev] -= sum(parts.values())
    return out


# --- The whole config ------------------------------------------------------------------------
def folders(config: dict) -> dict[str, Path]:
    return {k: Path(config[k]) for k in ("resources_dir", "work_dir", "output_dir")}


def estimates(config: dict, catalogue: dict, plans: dict, online: bool = False, timeout: float = 10.0) -> list[Estimate]:
    dirs, api = folders(config), config.get("download", {}).get("zenodo_api", "https://zenodo.org/api")
    return [estimate(plans[ds], catalogue[ds], dirs, online, timeout, api) for ds in config["datasets"]]


def check_enabled(config: dict) -> bool:
    env = os.environ.get(SPACE_ENV, "").strip().lower()
    return config.get("space_check", True) and env not in ("0", "false", "no", "off")


def refusals(config: dict, catalogue: dict, plans: dict, jobs: Iterable[tuple[str, dict]] | None = None) -> list[str]:
    """Messages for the datasets that do not fit. ``jobs``: (rule name, wildcards) of the jobs the
    run will execute (the workflow's DAG); without it, what is missing on disk decides."""
    dirs = folders(config)
    running: dict[str, set[str]] | None = None
    fetching: dict[str, set[str]] = {}
    if jobs is not None:
        running = {}
        tier_of = {"fetch_source": "download", "unpack_archives": "unpacked", "check_manual": "unpacked",
                   "convert_shard": "work", "clean_masks": "work", "publish_dataset": "results"}
        for rule, wc in jobs:
            if rule in tier_of and "dataset" in wc:
                running.setdefault(wc["dataset"], set()).add(tier_of[rule])
                if rule == "fetch_source":
                    fetching.setdefault(wc["dataset"], set()).add(wc.get("source"))
    needs = []
    for ds in config["datasets"]:
        if running is not None and ds not in running:
            continue  # nothing of it runs: not even estimated
        est = estimate(plans[ds], catalogue[ds], dirs, tiers=TIERS if running is None else running[ds])
        needs.append((est.id, still_to_write(est, dirs, None if running is None else running[est.id],
                                             None if running is None else fetching.get(est.id, set()))))
    return [s.message() for s in shortfalls(needs, dirs)]


def render(config: dict, ests: list[Estimate]) -> str:
    dirs = folders(config)
    lines = ["sizes are exact unless marked ~ (estimated); ? = unknown; kB/MB/GB are powers of 1000", ""]
    for e in ests:
        lines.append(f"{e.id}: {e.route}")
        lines.append(f"  files       {e.files}")
        lines.append(f"  download    {e.download.text():>10}  {e.download.how}")
        if len(e.sources) > 1:
            for name, fig, _ in e.sources[:4]:
                lines.append(f"    {name}: {fig.text()} ({fig.how})")
            if len(e.sources) > 4:
                lines.append(f"    ... and {len(e.sources) - 4} more")
        if e.placed is not None:
            lines.append(f"  placed      {e.placed.text():>10}  {e.placed.how} (not copied; archives are unpacked)")
        lines.append(f"  unpacked    {e.unpacked.text():>10}  {e.unpacked.how}")
        lines.append(f"  work tiers  {e.work.text():>10}  {e.work.how}")
        lines.append(f"  results     {e.results.text():>10}  {e.results.how}")
        lines += [f"  note: {n}" for n in e.notes]
    total = {t: Figure.total(getattr(e, t) for e in ests) for t in TIERS}
    lines.append("")
    lines.append("total: " + ", ".join(f"{t} {total[t].text()}" for t in TIERS))
    needs = [(e.id, still_to_write(e, dirs)) for e in ests]
    seen = {}
    for key in ("resources_dir", "work_dir", "output_dir"):
        dev = _device(dirs[key])
        tiers = [t for t in TIERS if FOLDER_OF[t] == key]
        more = sum(n[t] for _, n in needs for t in tiers)
        shared = f" (same file system as {seen[dev]})" if dev in seen else f", {human(free_bytes(dirs[key]))} free"
        seen.setdefault(dev, key)
        lines.append(f"{key} {dirs[key]}: {human(more)} still to write ({'+'.join(tiers)}){shared}")
    unknown = [e.id for e in ests if any(getattr(e, t).bytes is None for t in TIERS)]
    if unknown:
        lines.append("size unknown (not counted; pass --online to ask the servers): " + ", ".join(unknown))
    short = shortfalls(needs, dirs)
    lines += [f"REFUSED {s.message()}" for s in short] or ["every dataset fits"]
    return "\n".join(lines)


# --- `medcurate plan` --------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]  # the workflow's folder (the Snakefile's basedir)


def _merge(base: dict, over: dict) -> dict:
    """Snakemake's way of layering config files: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load(configfiles: list[str], overrides: list[str]) -> tuple[dict, dict, dict]:
    """(config, catalogue, plans) as the Snakefile resolves them: config/config.yaml, then each
    ``--configfile`` and ``--config KEY=VALUE`` (YAML values) over it."""
    import yaml

    from . import catalogue
    from .errors import MedcurateError

    raw = catalogue.read_yaml(ROOT / "config" / "config.yaml")
    for f in configfiles:
        layer = catalogue.read_yaml(Path(f))
        if not isinstance(layer, dict):
            raise MedcurateError(f, "expected a YAML mapping at the top level")
        raw = _merge(raw, layer)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise MedcurateError("--config", f"{item!r} is not KEY=VALUE")
        raw = _merge(raw, {key: yaml.safe_load(value)})
    config = catalogue.load_config(raw, ROOT)
    entries = catalogue.load_catalogue(config)
    plans = {ds: catalogue.plan(entries[ds], config) for ds in config["datasets"]}
    return config, entries, plans


def cmd_plan(args) -> int:
    config, entries, plans = load(args.configfile or [], args.config or [])
    ests = estimates(config, entries, plans, online=args.online, timeout=args.timeout)
    print(render(config, ests))
    refused = bool(shortfalls([(e.id, still_to_write(e, folders(config))) for e in ests], folders(config)))
    return 2 if refused and check_enabled(config) else 0


# --- After the run: one line per dataset -------------------------------------------------------
def summary(config: dict, start: float) -> list[str]:
    """One line per dataset from what the run left (dataset.json, fetch records, the results
    folder): cheap enough for the main process's last word, whatever happened."""
    import json
    import time

    dirs = folders(config)
    lines = []
    for ds in config["datasets"]:
        info_path = dirs["output_dir"] / ds / "dataset.json"
        try:
            counts = json.loads(info_path.read_text(encoding="utf-8"))["counts"]
            cases = f"{counts['cases']} cases, {counts['curated']} curated"
        except (OSError, ValueError, KeyError, TypeError):
            lines.append(f"{ds}: not built (no {info_path})")
            continue
        downloaded = 0
        for rec in sorted((dirs["resources_dir"] / "fetched" / ds).glob("*.json")):
            try:
                downloaded += int(json.loads(rec.read_text(encoding="utf-8")).get("size") or 0)
            except (OSError, ValueError, TypeError):
                pass
        results = tree_bytes(dirs["output_dir"] / ds)[0]
        built = info_path.stat().st_mtime
        when = f"published {built - start:.0f} s into this run" if built >= start else \
            f"unchanged since {time.strftime('%Y-%m-%d %H:%M', time.localtime(built))}"
        lines.append(f"{ds}: {cases}; downloaded {human(downloaded)}; results {human(results)}; {when}")
    lines.append(f"run time {time.time() - start:.0f} s")
    return lines
