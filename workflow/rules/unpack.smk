# Make a dataset's files ready: unpack the downloads of an open dataset, or check what a user placed
# for a gated one (unpacking placed archives, linking placed folders, adding any downloads; what
# was placed -- paths, sizes, mtimes -- is part of its slice, so an edited release re-runs it).
# Either way the result is resources/ready/<dataset>.json naming the root.


rule unpack_archives:
    input:
        fetched_records,
    output:
        f"{RES}/ready/{{dataset}}.json",
    log:
        f"{LOGS}/unpack/{{dataset}}.log",
    wildcard_constraints:
        dataset=OPEN_DATASETS,
    conda:
        ENV
    threads: 4  # several archives, or runs of one zip's members, side by side (capped at --cores)
    resources:
        mem_mb=500,  # measured: 33 MB peak RSS (streaming extraction)
        runtime=120,  # minutes; 1.9 GB zip of 12,400 PNGs in 4.7 s here
    params:
        slice=slice_of("unpack"),
        dest=lambda wc: f"{RES}/unpacked/{wc.dataset}",
    shell:
        "medcurate unpack --slice {params.slice:q} --records {input:q}"
        " --dest {params.dest:q} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule check_manual:
    input:
        fetched_records,
    output:
        f"{RES}/ready/{{dataset}}.json",
    log:
        f"{LOGS}/check_manual/{{dataset}}.log",
    wildcard_constraints:
        dataset=MANUAL_DATASETS,
    conda:
        ENV
    threads: 4  # as unpack_archives
    resources:
        mem_mb=500,  # measured: 20 MB peak RSS; may unpack a placed archive, as unpack_archives
        runtime=120,
    params:
        slice=slice_of("check_manual"),
        dest=lambda wc: f"{RES}/unpacked/{wc.dataset}",
    shell:
        "medcurate check-manual --slice {params.slice:q} --records {input:q}"
        " --dest {params.dest:q} --out {output:q} --threads {threads} > {log:q} 2>&1"
