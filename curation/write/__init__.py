"""The write phase: the selected rows as WebDataset shards (img2dataset layout) plus manifest.json."""
