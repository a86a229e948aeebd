"""The select phase: phash dedup, embedding dedup (SemDeDup), hierarchical k-means, balanced sampling."""
