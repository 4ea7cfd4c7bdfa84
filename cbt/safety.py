"""Crisis detection: does a user's message signal suicide or self-harm risk? Runs before every chat reply.

Tuned for recall first. Rules live in cbt/resources/safety.yaml: signal lexicons (explicit, passive,
methods, self-harm, slang, plans), benign spans (everyday 死-idioms), and context rules (negation,
reports about media or study, third parties). When no rule fires, the learned model (cbt/safety_model.py)
reads the message sentence by sentence, benign spans blanked out; ambiguous goodbye cues ('大家保重',
'paid off my debts') count only when that model leans to risk as well. Text is normalised first (NFKC,
lower case, common traditional characters as simplified). On risk, the app shows `crisis_reply()` and no
model text.

Policies: someone else at risk (a friend, a child) is a crisis for the user too, level elevated, with a
reason saying so; past ideation or a past attempt is flagged as elevated (a strong risk factor; recall first);
a credible denial ("我从来没想过自杀") is safe, a denial followed by a wish not to live is not.

>>> assess("笑死我了，今天累死了").crisis
False
>>> r = assess("我不想活了")
>>> r.crisis, r.level
(True, 'elevated')
>>> assess("遗书已经写好了，今晚就结束").level
'imminent'
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from cbt.taxonomy import load_resource
from cbt.textutil import clause_prefix

Level = Literal["none", "elevated", "imminent"]
_CJK = r"\u3400-\u9fff"
_SENTENCE = re.compile(r"[^。！？!?\n；;.]+(?:[。！？!?\n；;.]+|$)")


@dataclass
class SafetyResult:
    crisis: bool
    level: Level
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"crisis": self.crisis, "level": self.level, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class _Signal:
    reason: str
    level: Level
    pattern: re.Pattern[str]
    requires_distress: bool
    corroborate: bool = False


def _compile(rows: dict) -> re.Pattern[str]:
    parts = [f"(?:{p})" for p in rows.get("zh", []) + rows.get("en", [])]
    return re.compile("|".join(parts))  # the text is lower-cased already; IGNORECASE doubled the cost


@lru_cache(maxsize=1)
def _rules() -> dict:
    raw = load_resource("safety.yaml")
    signals = [
        _Signal(g["reason"], g["level"], _compile(g), bool(g.get("requires_distress")), bool(g.get("corroborate")))
        for g in raw["signals"]
    ]
    return {
        "signals": signals,
        "benign": _compile(raw["benign"]),
        "report": _compile(raw["report_context"]),
        "first_person": _compile(raw["first_person_desire"]),
        "distress": _compile(raw["distress"]),
        "third_party": _compile(raw["third_party"]),
        "neg_zh": re.compile("(?:" + "|".join(raw["negation"]["zh"]) + r")[^，。！？；]{0,6}$"),
        "neg_en": re.compile("|".join(raw["negation"]["en"])),
        "neg_strong": re.compile("(?:" + "|".join(raw["strong_negation"]) + r")[^，。！？；]{0,4}$"),
    }


@lru_cache(maxsize=1)
def _traditional() -> dict[int, str]:
    table = load_resource("safety.yaml")["traditional"]
    src, dst = "".join(table["from"]), "".join(table["to"])
    if len(src) != len(dst):
        raise ValueError(f"safety.yaml: traditional 'from' has {len(src)} characters, 'to' has {len(dst)}")
    return str.maketrans(src, dst)


def normalize(text: str) -> str:
    """NFKC, lower case, common traditional characters as simplified, no spaces between CJK characters.

    >>> normalize("我 想 自殺")
    '我想自杀'
    """
    text = unicodedata.normalize("NFKC", text).lower().translate(_traditional())
    return re.sub(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])", "", text)


def _sentence_of(sentences: list[tuple[int, int]], pos: int) -> tuple[int, int]:
    for s, e in sentences:
        if s <= pos < e:
            return s, e
    return 0, 0


def assess(message: str) -> SafetyResult:
    """Crisis level of one user message: none, elevated (ideation, self-harm, methods) or imminent (plan)."""
    text = normalize(message)
    reasons, third_party_only = _match_rules(text)
    if not reasons:
        return _second_opinion(text)
    level: Level = "imminent" if "imminent" in reasons.values() and not third_party_only else "elevated"
    if level == "elevated" and _model_says_imminent(text):
        level = "imminent"
        reasons["plan-like or goodbye language (learned imminence model)"] = "imminent"
    ordered = sorted(reasons, key=lambda r: reasons[r] != "imminent")
    if third_party_only:
        ordered.append("a third party may be at risk: encourage reaching them and professional help")
    return SafetyResult(True, level, ordered)


def rule_reasons(normalized: str) -> list[str]:
    """What the lexicon alone says about normalised text (no learned model): reasons, empty when silent."""
    return list(_match_rules(normalized)[0])


def _match_rules(text: str) -> tuple[dict[str, Level], bool]:
    """Lexicon hits as {reason: level}, and whether every hit is about someone else."""
    rules = _rules()
    benign = [(m.start(), m.end()) for m in rules["benign"].finditer(text)]
    sentences = [(m.start(), m.end()) for m in _SENTENCE.finditer(text)]
    has_distress = bool(rules["distress"].search(text))
    reasons: dict[str, Level] = {}
    third_party_only = True
    for sig in rules["signals"]:
        for m in sig.pattern.finditer(text):
            if any(s <= m.start() and m.end() <= e for s, e in benign):
                continue
            if sig.requires_distress and not has_distress:
                continue
            if sig.corroborate and not _model_agrees(text):
                continue
            prefix = clause_prefix(text, m.start(), 20)
            negatable = sig.level != "imminent" and not sig.reason.startswith("passive")
            if negatable and (rules["neg_zh"].search(prefix) or rules["neg_en"].search(prefix)):
                continue
            if sig.level != "imminent" and rules["neg_strong"].search(prefix):
                continue
            s, e = _sentence_of(sentences, m.start())
            sentence = text[s:e]
            first_person = bool(rules["first_person"].search(sentence))
            if rules["report"].search(sentence) and not first_person:
                continue
            third = bool(rules["third_party"].search(text[s : m.start()])) and "我" not in text[s : m.start()][-4:]
            if not third or first_person:
                third_party_only = False
            reason = f"{sig.reason}: '{m.group(0).strip()}'" + (" (about someone else)" if third else "")
            reasons.setdefault(reason, sig.level)
            break
    return reasons, third_party_only


def mask_benign(normalized: str) -> str:
    """Normalised text with the lexicon's benign spans (笑死, 累死, 爬上楼顶去补 ...) blanked out: what the
    learned model reads, in training and in use, so it never learns or fires on an everyday idiom.

    >>> mask_benign("笑死我了，今天累死了")
    ' 了，今天 '
    """
    return _rules()["benign"].sub(" ", normalized)


def _model_agrees(text: str) -> bool:
    """Ambiguous goodbye cues ('大家保重', paid my debts) count only when the learned model leans to risk too."""
    from cbt.safety_model import load_model

    model = load_model()
    return model is None or model.score(mask_benign(text))[0] >= model.corroborate_threshold


def _model_says_imminent(text: str) -> bool:
    from cbt.safety_model import load_model

    model = load_model()
    return model is not None and model.is_imminent(mask_benign(text))


def _second_opinion(text: str) -> SafetyResult:
    """When no rule fired, the learned model may still flag risk-like language (recall first)."""
    from cbt.safety_model import load_model

    model = load_model()
    if model is None or not text.strip():
        return SafetyResult(False, "none", [])
    score, sentence = model.score(mask_benign(text))
    if score < model.threshold:
        return SafetyResult(False, "none", [])
    rules = _rules()
    reasons = [f"risk-like language (learned model, score {score:.2f}): '{sentence[:60]}'"]
    if rules["third_party"].search(sentence) and not rules["first_person"].search(sentence):
        reasons[0] += " (about someone else)"
        reasons.append("a third party may be at risk: encourage reaching them and professional help")
    level: Level = "imminent" if model.is_imminent(mask_benign(text)) else "elevated"
    return SafetyResult(True, level, reasons)


def crisis_reply(lang: str = "zh") -> str:
    """The fixed, warm crisis message with hotlines; shown whatever any model says."""
    replies = load_resource("crisis_reply.yaml")
    return replies.get(lang, replies["zh"]).strip()


def looks_english(text: str) -> bool:
    """Choose the crisis reply's language: English when the message has letters and no CJK."""
    return bool(re.search(r"[a-zA-Z]", text)) and not re.search(rf"[{_CJK}]", text)
