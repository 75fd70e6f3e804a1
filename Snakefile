# medcurate: public medical-imaging datasets -> curated, ML-ready folders.
#   snakemake --cores 2 --configfile config/sample.yaml     (offline demo on the sample mirror)
#   snakemake --cores 8                                     (real sources, config/config.yaml)
import os

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/unpack.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/clean.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/publish.smk"
include: "workflow/rules/export.smk"


rule all:
    default_target: True
    input:
        expand(f"{OUT}/{{dataset}}/SHA256SUMS", dataset=DATASETS),
        expand(f"{OUT}/{{dataset}}/qc/montage.png", dataset=DATASETS),
