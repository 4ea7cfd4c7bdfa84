"""Which cognitive distortions a text names (Table 2, Table 3), in Chinese and English.

A mention counts when the text affirms it; one negated in its own clause ("你的担心并不是灾难化",
"this isn't catastrophizing") does not. The phrasings live in cbt/resources/distortions.yaml.

>>> extract_distortions("你的想法有些“以偏概全”，也带着读心术的色彩。")
['overgeneralization', 'mind_reading']
>>> extract_distortions("你的担心并不是灾难化，而是有现实依据的。")
[]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from cbt.taxonomy import DISTORTION_IDS, DISTORTIONS
from cbt.textutil import clause_prefix

# Uses of a term that are not the distortion: "个人化的建议" (personalised advice), "去算命" (a fortune
# teller), "没人能预测未来" (a truism), "选择性关注积极面" (a strategy), "读心得".
_FALSE_FRIENDS = re.compile(
    r"个人化(?:的)?(?:建议|方案|服务|治疗|计划|指导|支持|定制|设置|推荐|表达|风格)"
    r"|(?:去|找人|找|请人)算命|算命(?:先生|师|的说|的人|网站|软件)"
    r"|(?:没有人|没人|谁都|谁也|无法|不能|不可能)(?:能够?|可以)?(?:准确)?预测未来"
    r"|选择性(?:地)?关注(?:积极|正面|好的|美好|自己的优点)"
    r"|读心得"
    r"|label(?:l)?ing (?:your|the|my|our)? ?(?:emotions?|feelings?)",
    re.IGNORECASE,
)
_LATIN = re.compile(r"[A-Za-z]")
_NEG_ZH = re.compile(
    r"(?:并不是|并不算|(?<!是)不是(?!有点|有些|一种)|并非|不属于|不算|算不上|谈不上|而非|没有|未必是|不能说是?)[^，。！？；]{0,6}$"
)
_NEG_EN = re.compile(r"\b(?:not|n't|no|never|without|isn't|aren't|wasn't)\b(?:\W+\w+){0,3}\W*$", re.IGNORECASE)


@dataclass(frozen=True)
class Mention:
    """One place where a distortion is named; `negated` mentions do not count."""

    distortion: str
    start: int
    end: int
    term: str
    negated: bool


@lru_cache(maxsize=1)
def _patterns() -> tuple[list[tuple[str, re.Pattern[str]]], list[tuple[str, re.Pattern[str]]]]:
    """(Chinese, English) patterns per distortion id; English ones run only on text with Latin letters."""
    zh, en = [], []
    for d in DISTORTIONS.values():
        if d.zh_terms:
            zh.append((d.id, re.compile("|".join(f"(?:{t})" for t in d.zh_terms))))
        if d.en_terms:
            en.append((d.id, re.compile(r"\b(?:" + "|".join(f"(?:{t})" for t in d.en_terms) + r")", re.IGNORECASE)))
    return zh, en


def _is_negated(text: str, start: int) -> bool:
    prefix = clause_prefix(text, start, 24)
    return bool(_NEG_ZH.search(prefix) or _NEG_EN.search(prefix))


def find_mentions(text: str) -> list[Mention]:
    """Every naming of a distortion in `text`, in order, with negated ones flagged."""
    blocked = [(m.start(), m.end()) for m in _FALSE_FRIENDS.finditer(text)]
    mentions = []
    zh, en = _patterns()
    for did, pattern in zh + en if _LATIN.search(text) else zh:
        for m in pattern.finditer(text):
            if any(s <= m.start() < e for s, e in blocked):
                continue
            mentions.append(Mention(did, m.start(), m.end(), m.group(0), _is_negated(text, m.start())))
    mentions.sort(key=lambda x: (x.start, -x.end))
    return mentions


def extract_distortions(text: str) -> list[str]:
    """The taxonomy ids `text` affirms, in taxonomy order."""
    named = {m.distortion for m in find_mentions(text) if not m.negated}
    return [d for d in DISTORTION_IDS if d in named]
