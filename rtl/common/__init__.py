"""Pieces shared by every block: parameter checking, result buffering, manifests."""
