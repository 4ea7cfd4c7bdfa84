"""One Prompter builds every prompt the project sends from the templates in cbt/resources/prompts.yaml.

>>> p = Prompter()
>>> "问题：为什么我总是失眠？" in p.generation_prompt("为什么我总是失眠？", "最近压力很大。")
True
>>> p.instruction_record("标题", "描述", "回答").input
'标题\\n描述'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from cbt.schema import AlpacaRecord, CBTRecord
from cbt.taxonomy import load_resource

Lang = Literal["zh", "en"]


@dataclass(frozen=True)
class Example:
    """A worked example placed in the generation prompt (the paper added one GPT-4 prototype answer)."""

    question: str
    description: str
    answer: str


class Prompter:
    """Builds the paper's CBT generation prompt (Fig. 3) and its instruction records (section 4.1)."""

    def __init__(self, instruction_lang: Lang = "en") -> None:
        self.templates = load_resource("prompts.yaml")
        self.instruction_lang = instruction_lang

    def generation_prompt(
        self, question: str, description: str, lang: Lang = "zh", example: Example | None = None
    ) -> str:
        """The CBT prompt with the question and description filled in, optionally with a worked example."""
        block = ""
        if example is not None:
            block = self.templates["example_block"][lang].format(
                question=example.question, description=example.description, answer=example.answer
            )
        return self.templates["cbt_prompt"][lang].format(question=question, description=description, example=block)

    @property
    def instruction(self) -> str:
        """The training instruction (also the chat tab's default system prompt)."""
        return " ".join(self.templates["instruction"][self.instruction_lang].split())

    def input_text(self, question: str, description: str) -> str:
        """Question and description concatenated into the single input passage of section 4.1."""
        template = self.templates["input_template"][self.instruction_lang]
        return template.format(question=question.strip(), description=description.strip()).strip()

    def instruction_record(self, question: str, description: str, answer: str) -> AlpacaRecord:
        return AlpacaRecord(self.instruction, self.input_text(question, description), answer)

    def to_alpaca(self, record: CBTRecord) -> AlpacaRecord:
        return self.instruction_record(record.question, record.description, record.answer)

    def model_prompt(self, instruction: str, input_text: str) -> str:
        """The text a causal LM is trained on and prompted with, up to where its answer starts."""
        return self.templates["alpaca_template"].format(instruction=instruction.strip(), input=input_text.strip())

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        r"""A chat (optional system message = the instruction, then turns) as one model prompt.

        >>> p = Prompter()
        >>> p.chat_prompt([{"role": "user", "content": "我总是失眠"}]).endswith("我总是失眠\n\n### Response:\n")
        True
        """
        system = next((m["content"] for m in messages if m["role"] == "system"), self.instruction)
        turns = [m for m in messages if m["role"] in ("user", "assistant")]
        if not turns or turns[-1]["role"] != "user":
            raise ValueError("a chat prompt must end with a user message")
        if len(turns) == 1:
            return self.model_prompt(system, turns[0]["content"])
        roles = self.templates["history_roles"]
        lines = [f"{roles[m['role']]}：{m['content'].strip()}" for m in turns]
        return self.model_prompt(system, "\n".join(lines))
