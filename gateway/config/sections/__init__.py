"""The config sections, one module each; `gateway.config.models` joins them into `Config`."""
