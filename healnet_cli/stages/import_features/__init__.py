"""``healnet import-features``: patch features made by TRIDENT, CLAM, STAMP or slideflow, written as
the same ``features/<name>/<slide>.safetensors`` artifacts ``healnet extract`` writes."""
