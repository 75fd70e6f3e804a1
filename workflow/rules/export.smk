# Exports of a published results folder for the usual clients (docs/using-outputs.md). Not part
# of `all`: ask for one by path, e.g. `snakemake --cores 2 exports/drive/nnunet`, or for every
# export that applies to the configured datasets with `snakemake --cores 2 exports`.
from medcurate.exports import KINDS as _EXPORT_KINDS
from medcurate.exports import applicable as _export_applies
from medcurate.fingerprint import code_digest as _code_digest

EXPORTS = os.path.join(os.path.dirname(os.path.normpath(OUT)), "exports")


rule export:
    input:
        sums=f"{OUT}/{{dataset}}/SHA256SUMS",
    output:
        directory(f"{EXPORTS}/{{dataset}}/{{kind}}"),
    log:
        f"{LOGS}/export/{{dataset}}-{{kind}}.log",
    wildcard_constraints:
        kind="|".join(_EXPORT_KINDS),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    params:
        results=lambda wc: f"{OUT}/{wc.dataset}",
        code=lambda wc: _code_digest("exports", f"exports.{wc.kind}"),  # an exporter fix re-runs it
    shell:
        "medcurate export {wildcards.kind} {params.results:q} --out {output:q} > {log:q} 2>&1"


rule exports:
    input:
        [f"{EXPORTS}/{ds}/{kind}" for ds in DATASETS for kind in _EXPORT_KINDS if _export_applies(kind, PLANS[ds])],
    localrule: True
