"""Croissant 1.0 (JSON-LD, croissant.json) beside links to the results folder's manifest.csv,
dataset.json, images and masks: license, citation, the publisher's sources with their
checksums, the splits as a cr:Split record set and one field per manifest column."""

from __future__ import annotations

from ..atomic import file_digest
from .common import mask_columns

CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/", "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet", "format": "cr:format",
    "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key",
    "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "samplingRate": "cr:samplingRate", "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform",
}
DATATYPES = {"int": "sc:Integer", "float": "sc:Float"}
SPLIT_URLS = {"train": "cr:TrainingSplit", "val": "cr:ValidationSplit", "test": "cr:TestSplit"}


def _source(i: int, src: dict) -> dict:
    """A publisher's file, with the digest medcurate checked it against."""
    obj = {"@type": "cr:FileObject", "@id": f"source-{i}", "name": f"source-{i}",
           "description": f"publisher file {src['name']}" + (" (placed by the user)" if src.get("origin") == "manual" else ""),
           "contentUrl": src.get("url") or src["name"], "encodingFormat": "application/octet-stream"}
    if src.get("sha256"):
        obj["sha256"] = src["sha256"]
    elif src.get("md5"):
        obj["md5"] = src["md5"]
    if src.get("size") is not None:
        obj["contentSize"] = f"{src['size']} B"
    return obj


def build(ctx) -> None:
    meta, df = ctx.meta, ctx.df
    for rel in ("manifest.csv", "dataset.json"):
        ctx.link(rel, rel)
    for rel in sorted(set(df["image"]) | (set(df["mask"].dropna()) - {""} if mask_columns(df) else set())):
        ctx.link(rel, rel)
    types = {c: "int" if str(t) == "Int64" else "float" if str(t) == "float64" else "" for c, t in df.dtypes.items()}
    fields = []
    for col in df.columns:
        field = {"@type": "cr:Field", "@id": f"cases/{col}", "name": col,
                 "dataType": DATATYPES.get(types.get(col), "sc:Text"),
                 "source": {"fileObject": {"@id": "manifest.csv"}, "extract": {"column": col}}}
        if col == "split":
            field["references"] = {"field": {"@id": "splits/name"}}
        fields.append(field)
    folders = sorted({r.split("/", 1)[0] for r in df["image"]})
    doc = {
        "@context": CONTEXT, "@type": "sc:Dataset", "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": meta["id"], "description": f"{meta['name']}: {meta['task']} ({meta['modality']}), curated by medcurate; "
                                           f"every case with its patient-wise split and curation flag",
        "license": meta["license"], "citeAs": meta["citation"], "url": meta["homepage"],
        "version": meta.get("medcurate_version", "0.0.0"),
        "distribution": [
            {"@type": "cr:FileObject", "@id": "manifest.csv", "name": "manifest.csv", "contentUrl": "manifest.csv",
             "encodingFormat": "text/csv", "sha256": file_digest(ctx.stage / "manifest.csv")},
            {"@type": "cr:FileObject", "@id": "dataset.json", "name": "dataset.json", "contentUrl": "dataset.json",
             "encodingFormat": "application/json", "sha256": file_digest(ctx.stage / "dataset.json")},
            *({"@type": "cr:FileSet", "@id": f"{f}-files", "name": f"{f}-files", "encodingFormat":
               "application/x-gzip" if f == "nnunet" else "image/png", "includes": f"{f}/**/*"} for f in folders),
            *(_source(i, s) for i, s in enumerate(meta.get("sources", []))),
        ],
        "recordSet": [
            {"@type": "cr:RecordSet", "@id": "splits", "name": "splits", "dataType": "cr:Split", "key": {"@id": "splits/name"},
             "field": [{"@type": "cr:Field", "@id": "splits/name", "name": "name", "dataType": "sc:Text"},
                       {"@type": "cr:Field", "@id": "splits/url", "name": "url", "dataType": "sc:URL"}],
             "data": [{"splits/name": s, "splits/url": u} for s, u in SPLIT_URLS.items()]},
            {"@type": "cr:RecordSet", "@id": "cases", "name": "cases", "key": {"@id": "cases/case_id"},
             "description": "one record per case (manifest.csv); 'curated' = 1 marks the curated subset", "field": fields},
        ],
    }
    ctx.write_json("croissant.json", doc)
