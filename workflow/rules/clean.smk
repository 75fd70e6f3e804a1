# Clean the label maps of one converted shard (2-D segmentation datasets). Masks the options leave
# unchanged are hard-linked, so with cleaning off this step costs a link per case.


rule clean_masks:
    input:
        f"{WORK}/{{dataset}}/converted/shard-{{shard}}",
    output:
        directory(f"{WORK}/{{dataset}}/cleaned/shard-{{shard}}"),
    log:
        f"{LOGS}/clean/{{dataset}}/shard-{{shard}}.log",
    wildcard_constraints:
        dataset=MASK_DATASETS,
    conda:
        ENV
    threads: 1
    resources:
        # measured (bench/): 71 MB peak RSS, 144 MB when cleaning edits 13-Mpx mammogram masks
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        slice=slice_of("clean"),
    shell:
        "MEDCURATE_MEM_MB={resources.mem_mb} medcurate clean --slice {params.slice:q} --converted {input:q} --out {output:q} > {log:q} 2>&1"
