# Gather shards into the output contract (dedupe, splits, leakage check, manifest, QC, checksums).


rule gather_dataset:
    input:
        ready=f"{RES}/ready/{{dataset}}.json",
        shards=shard_dirs,
    output:
        manifest=f"{OUT}/{{dataset}}/manifest.csv",
        info=f"{OUT}/{{dataset}}/dataset.json",
        montage=report(
            f"{OUT}/{{dataset}}/qc/montage.png",
            caption="../report/montage.rst",
            category="QC",
            subcategory="{dataset}",
        ),
        sums=f"{OUT}/{{dataset}}/SHA256SUMS",
    log:
        f"{LOGS}/gather/{{dataset}}.log",
    params:
        plan=plan_file,
        out=lambda wc: f"{OUT}/{wc.dataset}",
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "python -m medcurate gather --plan {params.plan:q} --ready {input.ready:q} --shard-dirs {input.shards:q}"
        " --out {params.out:q} > {log:q} 2>&1"
