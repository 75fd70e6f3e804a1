"""Generic file formats that more than one dataset (or a dataset and the generic machinery) read,
parsed without any dataset's conventions: VIA region CSVs (via), xlsx sheets read behind
defusedxml (xlsx), run-length masks (rle), and shapes rasterised the way the annotation tools
draw them (shapes). A dataset module imports these; what is peculiar to one publisher stays in
its folder (e.g. INbreast's OsiriX plists, datasets/inbreast)."""
