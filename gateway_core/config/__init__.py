"""Control path: Istio-shaped configuration types, loading and validation."""
