# Select the curated subset: the exclusion rules, from the tables (and, for crude_shapes only,
# the cleaned masks); one job per dataset.


rule select_curated:
    input:
        tables,
    output:
        f"{WORK}/{{dataset}}/selected.csv",
    log:
        f"{LOGS}/select/{{dataset}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,  # measured: 72-87 MB peak RSS (12,400 rows)
        runtime=lambda wc, attempt: 30 * attempt,
    params:
        slice=slice_of("select"),
    shell:
        "MEDCURATE_MEM_MB={resources.mem_mb} medcurate select --slice {params.slice:q} --tiers {input:q} --out {output:q} > {log:q} 2>&1"
