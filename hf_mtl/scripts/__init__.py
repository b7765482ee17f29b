"""The recipe scripts behind `hf-mtl`: one job per module (train), arguments parsed from YAML + overrides."""
