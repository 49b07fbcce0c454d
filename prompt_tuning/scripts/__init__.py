"""Command-line helpers the original codebase's scripts call (`find_module`)."""
