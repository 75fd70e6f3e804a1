# Split: duplicates, near-duplicates (when asked for), train/val/test by patient, the leakage check.


rule split_dataset:
    input:
        selected=f"{WORK}/{{dataset}}/selected.csv",
        tiers=near_duplicate_tiers,
        source_split=source_split,
    output:
        directory(f"{WORK}/{{dataset}}/split"),
    log:
        f"{LOGS}/split/{{dataset}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,  # measured: 71-82 MB peak RSS (12,400 rows)
        runtime=lambda wc, attempt: 30 * attempt,
    params:
        slice=slice_of("split"),
    shell:
        "medcurate split --slice {params.slice:q} --selected {input.selected:q}"
        " --tiers {input.tiers:q} --source-split {input.source_split:q} --out {output:q} > {log:q} 2>&1"
