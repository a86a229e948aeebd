"""The model layer of the curation score phase: configs and profiles (registry), YOLO person detection and pose,
open_clip encoders, the LAION aesthetic MLP and zero-shot scores. Modules load their libraries lazily."""
