"""The one failure type of the agent: a kind the controller maps to its error, and a sentence."""

from __future__ import annotations


class AgentFailure(Exception):
    """A failure with its kind (a short word) and its one-line sentence for the user."""

    def __init__(self, kind: str, sentence: str) -> None:
        super().__init__(sentence)
        self.kind = kind
        self.sentence = sentence
