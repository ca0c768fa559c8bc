"""Infrastructure every room uses: structured logs and the installation's metrics."""
