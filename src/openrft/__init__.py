"""openrft: self-hosted reinforcement fine-tuning behind the OpenAI API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
