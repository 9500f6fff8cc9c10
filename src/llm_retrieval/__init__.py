"""Specialized LLMs as dense retrievers: the logic behind the Snakemake study."""
