"""Data path runtime state: clusters, hosts, load balancers, pools, limits, outlier detection."""
