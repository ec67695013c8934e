"""Codecs for links (G.711, DVI4 ADPCM, Opus), installed as gateway.codecs: `registry` is the
entry point (`get(name).encoder()` / `.decoder()`)."""
