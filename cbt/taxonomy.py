"""The five CBT sections and the distortion taxonomy, loaded from the data files in cbt/resources/.

>>> SECTION_IDS
('validation', 'key_thought', 'challenge', 'strategy', 'encouragement')
>>> DISTORTIONS["mind_reading"].zh
'读心术'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

RESOURCES = Path(__file__).parent / "resources"


@cache
def load_resource(name: str) -> Any:
    """Parse a YAML file shipped in cbt/resources (cached: the files never change at run time)."""
    with open(RESOURCES / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@dataclass(frozen=True)
class Section:
    id: str
    zh: str
    en: str
    colour: str
    hex: str


@dataclass(frozen=True)
class Distortion:
    id: str
    zh: str
    en: str
    table2: bool
    definition: str
    zh_terms: tuple[str, ...]
    en_terms: tuple[str, ...]


SECTIONS: dict[str, Section] = {row["id"]: Section(**row) for row in load_resource("sections.yaml")}
SECTION_IDS: tuple[str, ...] = tuple(SECTIONS)

DISTORTIONS: dict[str, Distortion] = {
    row["id"]: Distortion(
        id=row["id"],
        zh=row["zh"],
        en=row["en"],
        table2=bool(row["table2"]),
        definition=" ".join(row["definition"].split()),
        zh_terms=tuple(row["zh_terms"]),
        en_terms=tuple(row["en_terms"]),
    )
    for row in load_resource("distortions.yaml")
}
DISTORTION_IDS: tuple[str, ...] = tuple(DISTORTIONS)
TABLE2_IDS: tuple[str, ...] = tuple(d.id for d in DISTORTIONS.values() if d.table2)
