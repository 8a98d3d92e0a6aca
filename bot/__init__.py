"""flux-lora-bot: Flux images with a LoRA on Discord, through the Replicate predictions API."""

__version__ = "0.1.0"
