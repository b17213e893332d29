"""Data path: downstream listeners; ``tls`` (control path) builds their TLS contexts."""
