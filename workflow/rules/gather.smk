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
    threads: 1
    resources:
        # measured: 132 MB peak RSS and 5 s for 12,400 PNGs, 396 MB and 18 s for 320 mammograms;
        # doubled on a retry.
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    conda:
        ENV
    shell:
        "python -m medcurate gather --plan {params.plan:q} --ready {input.ready:q} --shard-dirs {input.shards:q}"
        " --out {params.out:q} > {log:q} 2>&1"
