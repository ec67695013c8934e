"""Hardware edges (sound cards, serial lines, CAT drivers): installed as gateway.hardware."""
