"""Datasets in one canonical Parquet layout, whatever their source."""
