# Download one source of a dataset: resumable, retried, verified, cached under resources/.
# The cached file lives beside (not as) the rule's output, so a re-run of this rule never deletes
# a verified download: `medcurate fetch` finds it, checks it, and does no network access.
# A source served by a publisher's service (TCIA, KiTS19, PhysioNet: medcurate/fetch/sources.py)
# is a folder there instead, fetched item by item (series, case, subject folder) into
# <dest>.store/ and resumed per item; options.<dataset>.fetch.subset is part of the slice.


rule fetch_source:
    output:
        f"{RES}/fetched/{{dataset}}/{{source}}.json",
    log:
        f"{LOGS}/fetch/{{dataset}}/{{source}}.log",
    wildcard_constraints:
        source=r"[^/]+",
    conda:
        ENV
    threads: 1
    resources:
        downloads=1,
        mem_mb=500,  # measured: 32 MB peak RSS (streaming, 1 MiB chunks)
        runtime=240,  # minutes; 1.9 GB copied and verified in 6.4 s here, real time is the network's
    params:
        slice=slice_of("fetch"),
        dest=lambda wc: f"{RES}/downloads/{wc.dataset}/{wc.source}",
    shell:
        "medcurate fetch --slice {params.slice:q} --source {wildcards.source:q}"
        " --dest {params.dest:q} --record {output:q} > {log:q} 2>&1"
