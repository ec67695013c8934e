"""Codecs (G.711, ADPCM, Opus): installed as gateway.codecs."""
