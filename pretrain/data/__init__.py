"""Pretraining data: shard listing, multi-crop views and the streaming, resumable loader."""
