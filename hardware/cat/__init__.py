"""CAT drivers: one module per radio family, each tested against an emulator of its protocol."""
