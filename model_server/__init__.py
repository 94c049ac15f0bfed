"""Serving scikit-learn models on KServe: V1, V2 REST and V2 gRPC."""
