# Convert a dataset in N shards (cases dealt round-robin by id), never one job per image.


rule convert_shard:
    input:
        f"{RES}/ready/{{dataset}}.json",
    output:
        temp(directory(f"{WORK}/{{dataset}}/shard-{{shard}}")),
    log:
        f"{LOGS}/convert/{{dataset}}/shard-{{shard}}.log",
    params:
        plan=plan_file,
        shards=lambda wc: _catalogue.shard_count(PLANS[wc.dataset]),
    threads: 1
    resources:
        # measured (bench/RESULTS.md): 122 MB peak RSS and 26 s per shard of 1,550 ultrasound PNGs;
        # 367 MB and 105 s per shard of 80 16-bit 4084x3328 DICOMs. Doubled on a retry.
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    conda:
        ENV
    shell:
        "python -m medcurate convert --plan {params.plan:q} --ready {input:q} --shard {wildcards.shard}"
        " --shards {params.shards} --out {output:q} > {log:q} 2>&1"
