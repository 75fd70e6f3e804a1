"""Uncertain and blank image labels, resolved per run by the select step (not at conversion:
changing the policy re-runs select, split and publish, never a decode).

Label columns whose catalogue values include '-1' carry the CheXpert labeller's convention: 1
positive, 0 negative, -1 uncertain, '' not mentioned. Options of the select step:

- ``uncertain_labels``: ``ignore`` (default) keeps -1 in the dataset's own columns as a value of
  its own; ``zeros`` / ``ones`` turn it into 0 / 1. The harmonised ``h_*`` columns are 1 / 0 /
  blank only: under ``ignore`` an uncertain finding is blank there.
- ``blank_labels``: ``keep`` (default) leaves not-mentioned blank; ``zeros`` makes it 0, in every
  label column that can hold 0 (a harmonised finding the dataset cannot provide stays blank).

Both choices are recorded with the other select options in dataset.json; nothing is collapsed
unless asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only; the Snakefile imports this module (through outputs)
    import pandas as pd

HARMONISED_PREFIX = "h_"


def target_columns(classes: dict) -> list[str]:
    """The label columns a model trains on: the dataset's own, with the harmonised h_* columns
    beside them; a set whose only labels are harmonised (PadChest's and Open-i's free-text terms)
    trains on those it can provide (an h_* column it cannot provide has no class but blank)."""
    own = [c for c in classes if not c.startswith(HARMONISED_PREFIX)]
    return own or [c for c, values in classes.items() if [str(v) for v in values] != [""]]
UNCERTAIN = {"ignore": None, "zeros": "0", "ones": "1"}


def apply(table: pd.DataFrame, classes: dict[str, list[str]], options: dict) -> pd.DataFrame:
    uncertain = options.get("uncertain_labels", "ignore")
    blank = options.get("blank_labels", "keep")
    if uncertain not in UNCERTAIN or blank not in ("keep", "zeros"):
        raise ValueError(f"uncertain_labels={uncertain!r}, blank_labels={blank!r}")
    table = table.copy()
    for name, values in classes.items():
        if name not in table.columns:
            continue
        col = table[name].astype(str)
        harmonised = name.startswith(HARMONISED_PREFIX)
        replace = {}
        if "-1" in values and (UNCERTAIN[uncertain] is not None or harmonised):
            replace["-1"] = UNCERTAIN[uncertain] or ""
        if blank == "zeros" and "" in values and "0" in values:
            replace[""] = "0"
        if replace:
            # one pass, so a -1 made blank is not then made 0 by the blank rule
            table[name] = col.map(lambda v: replace.get(v, v))
    return table

