"""Text generation behind one interface: hf (transformers + peft), openai (any compatible server), retrieval."""

from cbt.backends.base import Backend, GenParams, Message

__all__ = ["Backend", "GenParams", "Message"]
