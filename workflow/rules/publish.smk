# Publish the results folder of the output contract (links into the tiers, manifest, dataset.json,
# QC, SHA256SUMS); `snakemake reclaim` frees the unpacked and converted tiers afterwards.


rule publish_dataset:
    input:
        ready=f"{RES}/ready/{{dataset}}.json",
        converted=converted,
        cleaned=cleaned,
        split=f"{WORK}/{{dataset}}/split",
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
        f"{LOGS}/publish/{{dataset}}.log",
    conda:
        ENV
    threads: 2  # the QC montage decodes its sample images two at a time
    resources:
        # measured (bench/): 111 MB peak RSS for 12,400 PNGs, 216 MB for 320 mammograms (whose 24
        # QC samples, decoded on two threads, take most of its 3 s); doubled on a retry.
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        slice=slice_of("publish"),
        out=lambda wc: f"{OUT}/{wc.dataset}",
    shell:
        "medcurate publish --slice {params.slice:q} --ready {input.ready:q}"
        " --tiers {input.converted:q} {input.cleaned:q} --split {input.split:q} --out {params.out:q}"
        " --threads {threads} > {log:q} 2>&1"


# Free the tiers a finished build no longer needs: the unpacked archives and the converted and
# cleaned shards (results/ keeps its hard links, so its files stay). Downloads and the small step
# tables are kept, so the next run is still a no-op; a later change that needs a tier rebuilds it
# from the cached downloads.
rule reclaim:
    log:
        f"{LOGS}/reclaim.log",
    localrule: True
    conda:
        ENV
    params:
        paths=[
            p
            for ds in DATASETS
            for p in (
                f"{RES}/unpacked/{ds}",
                f"{RES}/ready/{ds}.json",
                f"{WORK}/{ds}/converted",
                f"{WORK}/{ds}/cleaned",
            )
        ],
    shell:
        "medcurate reclaim {params.paths:q} > {log:q} 2>&1; cat {log:q}"
