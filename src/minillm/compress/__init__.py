"""Make a trained run smaller: ``quantize`` (8- and 4-bit weights). A compressed run is an ordinary run
directory that every command takes unchanged."""
