"""What every layer uses: errors, the config schema's base, the stage cache, metrics and safe file I/O."""
