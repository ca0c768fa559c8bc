"""The ops console: health of every connection, the failure queue, re-syncs, metrics."""
