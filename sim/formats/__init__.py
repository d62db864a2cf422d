"""Host-side formats: stream beats per block, the compressed-matrix file, link frames."""
