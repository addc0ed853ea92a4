"""The streamed exporter: graphs written from the weights one layer at a time (see the README)."""
