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
        mem_mb=2000,
    conda:
        ENV
    shell:
        "python -m medcurate convert --plan {params.plan:q} --ready {input:q} --shard {wildcards.shard}"
        " --shards {params.shards} --out {output:q} > {log:q} 2>&1"
