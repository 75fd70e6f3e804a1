"""What a family of datasets shares and no other dataset needs (e.g. cxr: the chest X-ray sets'
harmonised vocabulary and their mappings to it). A dataset folder imports its family module; one
dataset never imports another's folder, and formats any dataset may read live in medcurate/formats/."""
