# Convert a dataset in N shards (cases dealt round-robin by id), never one job per image. The
# converted tier is kept: later steps read its tables and masks, results/ hard-links its images.


rule convert_shard:
    input:
        f"{RES}/ready/{{dataset}}.json",
    output:
        directory(f"{WORK}/{{dataset}}/converted/shard-{{shard}}"),
    log:
        f"{LOGS}/convert/{{dataset}}/shard-{{shard}}.log",
    conda:
        ENV
    threads: 1
    resources:
        # measured (bench/): 93 MB peak RSS and 24 s per shard of 1,550 ultrasound PNGs;
        # 355 MB and 78 s per shard of 80 16-bit 4084x3328 DICOMs. Doubled on a retry. The
        # decoders refuse an image whose declared size would not fit (MEDCURATE_MEM_MB).
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    params:
        slice=slice_of("convert"),
        shards=lambda wc: _catalogue.shard_count(PLANS[wc.dataset]),
    shell:
        "MEDCURATE_MEM_MB={resources.mem_mb} medcurate convert --slice {params.slice:q} --ready {input:q}"
        " --shard {wildcards.shard} --shards {params.shards} --out {output:q} > {log:q} 2>&1"
